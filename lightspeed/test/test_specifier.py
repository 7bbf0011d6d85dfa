# -*- test-case-name: lightspeed.test.test_specifier -*-
"""
Tests for :obj:`lightspeed.specifier`: parsing, validating and printing
destination specifiers, and the :obj:`BadSpecifier` raised for every malformed
one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import BadSpecifier, LightspeedError
from lightspeed.specifier import (
    SCHEME,
    WILDCARD,
    Specifier,
    check_name,
    check_state,
    coerce,
    parse,
)
from lightspeed.test.optional import given, settings, st

# -- strategies -------------------------------------------------------------

# Names: no '*', '/', ',' and no control characters (category Cc covers
# C0, DEL and C1); surrogates are left out so failures print cleanly.
_nameChars = st.characters(
    blacklist_categories=("Cc", "Cs"), blacklist_characters="*/,"
)
_stateChars = st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="/")

names = st.text(_nameChars, min_size=1, max_size=12)
parts = st.one_of(
    st.just((WILDCARD,)),
    st.lists(names, min_size=1, max_size=4, unique=True).map(tuple),
)
states = st.one_of(
    st.none(),
    st.just(WILDCARD),
    st.text(_stateChars, min_size=1, max_size=12),
)
specifiers = st.builds(Specifier.build, parts, parts, states)

# Garbage.  Scalars are hashable; "flat" values nest at most one list deep,
# so every member of a kernel or session list is hashable.
_interesting = st.sampled_from(
    [WILDCARD, SCHEME, "", "a", "a,b", "*,a", "a/b", "\x00", "KERNEL", "SESSION", "STATE"]
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(max_size=8),
    st.text(max_size=10),
    _interesting,
)
_keys = st.one_of(st.sampled_from(["KERNEL", "SESSION", "STATE"]), st.text(max_size=6))
flat = st.one_of(scalars, st.lists(scalars, max_size=4))
shallowGarbage = st.one_of(
    flat,
    st.lists(flat, max_size=4),
    st.lists(flat, min_size=3, max_size=3),
    st.tuples(flat, flat, flat),
    st.dictionaries(_keys, flat, max_size=4),
    st.fixed_dictionaries({"KERNEL": flat, "SESSION": flat, "STATE": flat}),
)
# Any JSON-ish value, nested at will.
jsonish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_keys, children, max_size=4),
    ),
    max_leaves=12,
)
deepGarbage = st.one_of(
    jsonish,
    st.lists(jsonish, min_size=3, max_size=3),
    st.tuples(
        st.lists(jsonish, min_size=1, max_size=4),
        st.lists(jsonish, min_size=1, max_size=4),
        st.one_of(st.text(_stateChars, min_size=1, max_size=6), scalars),
    ).map(list),
    st.fixed_dictionaries({"KERNEL": jsonish, "SESSION": jsonish, "STATE": jsonish}),
)
_specChars = st.sampled_from(list("ab*/,: \x00\x7f\n") + ["poe", "//"])
garbageText = st.one_of(
    st.text(max_size=30),
    st.text(max_size=30).map(lambda t: SCHEME + t),
    st.lists(_specChars, max_size=12).map(lambda cs: SCHEME + "".join(cs)),
)


class BadSpecifierTypeTests(SynchronousTestCase):
    """
    Tests for the :obj:`BadSpecifier` exception class itself.
    """

    def test_isValueError(self):
        """When BadSpecifier is checked, then it is a ValueError and a LightspeedError."""
        self.assertTrue(issubclass(BadSpecifier, ValueError))
        self.assertTrue(issubclass(BadSpecifier, LightspeedError))


class ParseTests(SynchronousTestCase):
    """
    Tests for every form that :obj:`parse` accepts.
    """

    def test_full(self):
        """When 'poe://K/S/STATE' is parsed, then one kernel, one session and the state come out."""
        d = parse("poe://K/S/STATE")
        self.assertEqual(d, Specifier(("K",), ("S",), "STATE"))
        self.assertIsInstance(d, Specifier)

    def test_sessionOnly(self):
        """When 'poe://K/S/' is parsed, then the state is None."""
        d = parse("poe://K/S/")
        self.assertEqual(d, Specifier(("K",), ("S",), None))
        self.assertIsNone(d.state)

    def test_commaLists(self):
        """When kernels and sessions are comma lists, then they come out as tuples in order."""
        d = parse("poe://k2,k1/s3,s1,s2/go")
        self.assertEqual(d.kernels, ("k2", "k1"))
        self.assertEqual(d.sessions, ("s3", "s1", "s2"))
        self.assertEqual(d.state, "go")

    def test_wildcardKernel(self):
        """When the kernel part is '*', then kernels is ('*',) and all_kernels is true."""
        d = parse("poe://*/S/go")
        self.assertEqual(d.kernels, (WILDCARD,))
        self.assertTrue(d.all_kernels)
        self.assertFalse(d.all_sessions)

    def test_wildcardSession(self):
        """When the session part is '*', then sessions is ('*',) and all_sessions is true."""
        d = parse("poe://K/*/go")
        self.assertEqual(d.sessions, (WILDCARD,))
        self.assertTrue(d.all_sessions)
        self.assertFalse(d.all_kernels)

    def test_notWildcard(self):
        """When no part is '*', then neither all_kernels nor all_sessions is true."""
        d = parse("poe://a,b/c,d/go")
        self.assertFalse(d.all_kernels)
        self.assertFalse(d.all_sessions)

    def test_bothWildcards(self):
        """When both parts are '*', then both all_kernels and all_sessions are true."""
        d = parse("poe://*/*/")
        self.assertTrue(d.all_kernels)
        self.assertTrue(d.all_sessions)
        self.assertIsNone(d.state)

    def test_wildcardState(self):
        """When the state is '*', then it is kept as a plain state name."""
        d = parse("poe://K/S/*")
        self.assertEqual(d.state, "*")
        self.assertFalse(d.all_kernels)
        self.assertFalse(d.all_sessions)

    def test_duplicatesRemoved(self):
        """When a comma list repeats names, then each is kept once in first order."""
        d = parse("poe://b,a,b,a/y,x,y/go")
        self.assertEqual(d.kernels, ("b", "a"))
        self.assertEqual(d.sessions, ("y", "x"))

    def test_unusualNamesAccepted(self):
        """When names hold spaces, colons, dots and non-ASCII, then they are accepted unchanged."""
        d = parse("poe://host:1 .x/séss ion/st ate!")
        self.assertEqual(d, Specifier(("host:1 .x",), ("séss ion",), "st ate!"))

    def test_cached(self):
        """When the same string is parsed twice, then the same object comes back."""
        self.assertIs(parse("poe://cache/me/go"), parse("poe://cache/me/go"))


class CoerceTests(SynchronousTestCase):
    """
    Tests for every form that :obj:`coerce` accepts.
    """

    def test_string(self):
        """When a string is coerced, then it is parsed."""
        self.assertEqual(coerce("poe://a,b/s/go"), Specifier(("a", "b"), ("s",), "go"))

    def test_sessionOnlyString(self):
        """When a session-only string is coerced, then the state is None."""
        self.assertIsNone(coerce("poe://a/s/").state)

    def test_listOfStrings(self):
        """When [K, S, STATE] with plain strings is coerced, then one kernel and one session come out."""
        self.assertEqual(coerce(["K", "S", "go"]), Specifier(("K",), ("S",), "go"))

    def test_listOfCommaStrings(self):
        """When [K, S, STATE] holds comma strings, then they are split."""
        self.assertEqual(
            coerce(["k1,k2", "s1,s2", "go"]), Specifier(("k1", "k2"), ("s1", "s2"), "go")
        )

    def test_listOfLists(self):
        """When [K, S, STATE] holds lists of names, then they become tuples in order."""
        self.assertEqual(
            coerce([["k2", "k1"], ["s1"], "go"]), Specifier(("k2", "k1"), ("s1",), "go")
        )

    def test_tuple(self):
        """When (K, S, STATE) is a tuple with tuple parts, then it is coerced like a list."""
        self.assertEqual(
            coerce((("k",), ("s1", "s2"), "go")), Specifier(("k",), ("s1", "s2"), "go")
        )

    def test_listWildcards(self):
        """When the list form has '*' parts, then they are wildcards."""
        d = coerce(["*", ["*"], "go"])
        self.assertTrue(d.all_kernels)
        self.assertTrue(d.all_sessions)

    def test_listDuplicatesRemoved(self):
        """When the list form repeats names, then each is kept once in first order."""
        d = coerce([["b", "a", "b"], "y,x,y,x", "go"])
        self.assertEqual(d.kernels, ("b", "a"))
        self.assertEqual(d.sessions, ("y", "x"))

    def test_listStarState(self):
        """When the list form has state '*', then it is a plain state."""
        self.assertEqual(coerce(["K", "S", "*"]).state, "*")

    def test_dict(self):
        """When the dict form is coerced, then its parts are used."""
        d = coerce({"KERNEL": "k1,k2", "SESSION": ["s"], "STATE": "go"})
        self.assertEqual(d, Specifier(("k1", "k2"), ("s",), "go"))

    def test_dictWildcards(self):
        """When the dict form has '*' parts, then they are wildcards."""
        d = coerce({"KERNEL": "*", "SESSION": "*", "STATE": "go"})
        self.assertTrue(d.all_kernels)
        self.assertTrue(d.all_sessions)

    def test_specifierPassthrough(self):
        """When a Specifier is coerced, then the very same object comes back."""
        d = Specifier(("k",), ("s",), "go")
        self.assertIs(coerce(d), d)

    def test_sessionOnlySpecifierPassthrough(self):
        """When a session-only Specifier is coerced, then it comes back unchanged."""
        d = parse("poe://k/s/")
        self.assertIs(coerce(d), d)

    def test_formsAgree(self):
        """When one destination is given in every form, then all coerce to equal Specifiers."""
        expected = parse("poe://k1,k2/s/go")
        self.assertEqual(coerce("poe://k1,k2/s/go"), expected)
        self.assertEqual(coerce(["k1,k2", "s", "go"]), expected)
        self.assertEqual(coerce([["k1", "k2"], ["s"], "go"]), expected)
        self.assertEqual(coerce({"KERNEL": ["k1", "k2"], "SESSION": "s", "STATE": "go"}), expected)
        self.assertEqual(coerce(expected), expected)


class SpecifierTests(SynchronousTestCase):
    """
    Tests for :obj:`Specifier` values: printing, copies, hashing, immutability.
    """

    def test_strFull(self):
        """When a full Specifier is printed, then the canonical string comes out."""
        self.assertEqual(str(coerce([["a", "b"], "s1,s2", "go"])), "poe://a,b/s1,s2/go")

    def test_strSessionOnly(self):
        """When a session-only Specifier is printed, then it ends with '/'."""
        self.assertEqual(str(parse("poe://a/s/")), "poe://a/s/")

    def test_strCanonical(self):
        """When a Specifier with duplicates and wildcards is printed, then duplicates are gone."""
        self.assertEqual(str(parse("poe://b,a,b/*/*")), "poe://b,a/*/*")

    def test_strDict(self):
        """When a dict-form Specifier is printed, then the string form comes out."""
        self.assertEqual(
            str(coerce({"KERNEL": "*", "SESSION": ["x", "y"], "STATE": "go"})), "poe://*/x,y/go"
        )

    def test_withState(self):
        """When with_state is called, then a new Specifier with that state comes back and the old is unchanged."""
        d = parse("poe://k/s/")
        e = d.with_state("go")
        self.assertEqual(e, Specifier(("k",), ("s",), "go"))
        self.assertIsNone(d.state)
        self.assertEqual(str(e), "poe://k/s/go")

    def test_withStateReplaces(self):
        """When with_state is called on a full Specifier, then the state is replaced."""
        self.assertEqual(parse("poe://k/s/a").with_state("b"), parse("poe://k/s/b"))

    def test_withStateBad(self):
        """When with_state gets a bad state, then BadSpecifier names it."""
        d = parse("poe://k/s/")
        e = self.assertRaises(BadSpecifier, d.with_state, "a/b")
        self.assertIn("'a/b'", str(e))
        self.assertRaises(BadSpecifier, d.with_state, "")
        self.assertRaises(BadSpecifier, d.with_state, None)

    def test_sessionOnly(self):
        """When session_only is called, then the state is dropped and the rest kept."""
        d = parse("poe://k1,k2/s/go")
        e = d.session_only()
        self.assertEqual(e, Specifier(("k1", "k2"), ("s",), None))
        self.assertEqual(d.state, "go")
        self.assertEqual(str(e), "poe://k1,k2/s/")

    def test_hashable(self):
        """When equal Specifiers are hashed, then they collide and work as one dict key."""
        a = parse("poe://k/s/go")
        b = coerce(["k", ["s"], "go"])
        self.assertEqual(hash(a), hash(b))
        self.assertEqual({a: 1, b: 2}, {a: 2})
        self.assertEqual(len({a, b, a.session_only()}), 2)

    def test_notEqualDifferentState(self):
        """When two Specifiers differ only in state, then they are not equal."""
        self.assertNotEqual(parse("poe://k/s/a"), parse("poe://k/s/b"))
        self.assertNotEqual(parse("poe://k/s/a"), parse("poe://k/s/"))

    def test_orderMatters(self):
        """When two Specifiers list the same kernels in another order, then they are not equal."""
        self.assertNotEqual(parse("poe://a,b/s/go"), parse("poe://b,a/s/go"))

    def test_immutable(self):
        """When an attribute of a Specifier is assigned, then it raises and the value is unchanged."""
        d = parse("poe://k/s/go")
        for attr, value in [("state", "x"), ("kernels", ("x",)), ("sessions", ("x",))]:
            self.assertRaises(AttributeError, setattr, d, attr, value)
            self.assertRaises(dataclasses.FrozenInstanceError, setattr, d, attr, value)
        self.assertRaises(AttributeError, setattr, d, "other", 1)
        self.assertRaises(AttributeError, delattr, d, "state")
        self.assertEqual(d, Specifier(("k",), ("s",), "go"))

    def test_buildDefaultState(self):
        """When build gets no state, then the Specifier is session-only."""
        self.assertEqual(Specifier.build("k", "s"), parse("poe://k/s/"))


class CheckNameTests(SynchronousTestCase):
    """
    Tests for :obj:`check_name`.
    """

    def test_valid(self):
        """When a good name is checked, then it comes back unchanged."""
        for name in ["k", "kernel-1", "a b", "a:b.c", "ü", "x" * 200]:
            self.assertIs(check_name(name), name)

    def test_empty(self):
        """When the name is empty, then BadSpecifier says so using the given wording."""
        e = self.assertRaises(BadSpecifier, check_name, "", "session alias")
        self.assertIn("session alias", str(e))
        self.assertIn("empty", str(e))

    def test_defaultWording(self):
        """When no wording is given, then the message says 'kernel name'."""
        e = self.assertRaises(BadSpecifier, check_name, "")
        self.assertIn("kernel name", str(e))

    def test_forbiddenCharacters(self):
        """When the name holds '*', '/', ',' or a control character, then BadSpecifier names it."""
        for name in ["a*", "*", "a/b", "/", "a,b", ",", "a\x00b", "a\nb", "\tx", "a\x1f", "a\x7f"]:
            e = self.assertRaises(BadSpecifier, check_name, name)
            self.assertIn(repr(name), str(e))

    def test_notString(self):
        """When the name is not a string, then BadSpecifier names its type and value."""
        for value, typeName in [(1, "int"), (None, "NoneType"), (b"k", "bytes"), (["k"], "list")]:
            e = self.assertRaises(BadSpecifier, check_name, value)
            self.assertIn(typeName, str(e))
            self.assertIn(repr(value), str(e))


class CheckStateTests(SynchronousTestCase):
    """
    Tests for :obj:`check_state`.
    """

    def test_valid(self):
        """When a good state is checked, then it comes back unchanged, '*' and ',' included."""
        for state in ["go", "*", "a,b", "a*b", "with space", "ü"]:
            self.assertIs(check_state(state), state)

    def test_empty(self):
        """When the state is empty, then BadSpecifier says so."""
        e = self.assertRaises(BadSpecifier, check_state, "")
        self.assertIn("state", str(e))
        self.assertIn("empty", str(e))

    def test_forbiddenCharacters(self):
        """When the state holds '/' or a control character, then BadSpecifier names it."""
        for state in ["a/b", "/", "a\x00", "a\nb", "\x1f", "a\x7f"]:
            e = self.assertRaises(BadSpecifier, check_state, state)
            self.assertIn(repr(state), str(e))

    def test_notString(self):
        """When the state is not a string, then BadSpecifier names its type."""
        for value, typeName in [(1, "int"), (None, "NoneType"), (object(), "object")]:
            e = self.assertRaises(BadSpecifier, check_state, value)
            self.assertIn(typeName, str(e))


class ParseErrorTests(SynchronousTestCase):
    """
    Tests for every malformed string given to :obj:`parse` (and :obj:`coerce`).
    """

    def assertBad(self, text: Any, *fragments: str) -> None:
        """
        Assert that both :obj:`parse` and :obj:`coerce` reject ``text`` with a
        :obj:`BadSpecifier` whose message holds every fragment.
        """
        for f in (parse, coerce):
            e = self.assertRaises(BadSpecifier, f, text)
            self.assertIsInstance(e, ValueError)
            for fragment in fragments:
                self.assertIn(fragment, str(e))

    def test_emptyKernel(self):
        """When the kernel part is empty, then the message names the kernel part."""
        self.assertBad("poe:///S/go", "kernel", "empty")

    def test_emptySession(self):
        """When the session part is empty, then the message names the session part."""
        self.assertBad("poe://K//go", "session", "empty")

    def test_allEmpty(self):
        """When every part is empty, then BadSpecifier is raised."""
        self.assertBad("poe:////", "kernel", "empty")

    def test_emptyNameInList(self):
        """When a comma list holds an empty name, then the message names the part."""
        self.assertBad("poe://a,,b/S/go", "kernel", "empty")
        self.assertBad("poe://K/s,/go", "session", "empty")

    def test_emptyString(self):
        """When the string is empty, then the scheme is reported missing."""
        self.assertBad("", "poe://")

    def test_missingScheme(self):
        """When the scheme is missing, then the message quotes the text and the scheme."""
        self.assertBad("K/S/go", "'K/S/go'", "poe://")

    def test_wrongScheme(self):
        """When the scheme is wrong, then the message quotes the text."""
        self.assertBad("http://K/S/go", "'http://K/S/go'", "poe://")
        self.assertBad("POE://K/S/go", "'POE://K/S/go'")
        self.assertBad("poe:/K/S/go", "'poe:/K/S/go'")
        self.assertBad(" poe://K/S/go", "' poe://K/S/go'")

    def test_extraSegments(self):
        """When there are more than three parts, then the message gives the count."""
        self.assertBad("poe://K/S/go/more", "'poe://K/S/go/more'", "not 4")
        self.assertBad("poe://K/S/go/", "not 4")

    def test_slashInState(self):
        """When the state seems to hold '/', then it is too many parts."""
        self.assertBad("poe://K/S/a/b", "'poe://K/S/a/b'", "three parts")

    def test_tooFewSegments(self):
        """When there are fewer than three parts, then the message gives the count."""
        self.assertBad("poe://K/S", "'poe://K/S'", "not 2")
        self.assertBad("poe://K", "'poe://K'", "not 1")
        self.assertBad("poe://", "not 1")

    def test_wildcardMixedKernel(self):
        """When '*' is mixed into a kernel list, then the message names the kernel part."""
        self.assertBad("poe://*,a/S/go", "kernel", "'*,a'")
        self.assertBad("poe://a,*/S/go", "kernel", "'a,*'")

    def test_wildcardMixedSession(self):
        """When '*' is mixed into a session list, then the message names the session part."""
        self.assertBad("poe://K/s,*/go", "session", "'s,*'")

    def test_starInName(self):
        """When a name holds '*' beside other characters, then the message quotes the name."""
        self.assertBad("poe://a*/S/go", "kernel", "'a*'", "'*'")
        self.assertBad("poe://K/**/go", "session", "'**'")

    def test_controlInName(self):
        """When a name holds a control character, then the message quotes the name."""
        self.assertBad("poe://a\x00b/S/go", "kernel", repr("a\x00b"))
        self.assertBad("poe://K/s\n/go", "session", repr("s\n"))
        self.assertBad("poe://K/s\x7f/go", "session", repr("s\x7f"))

    def test_controlInState(self):
        """When the state holds a control character, then the message quotes the state."""
        self.assertBad("poe://K/S/g\to", "state", repr("g\to"))
        self.assertBad("poe://K/S/go\n", "state", repr("go\n"))

    def test_notString(self):
        """When parse gets a hashable non-string, then the message names its type."""
        for value, typeName in [(1, "int"), (None, "NoneType"), (b"poe://K/S/go", "bytes")]:
            self.assertBad(value, typeName)
        e = self.assertRaises(BadSpecifier, parse, object())
        self.assertIn("object", str(e))


class CoerceErrorTests(SynchronousTestCase):
    """
    Tests for every malformed non-string value given to :obj:`coerce`.
    """

    def assertBad(self, value: Any, *fragments: str) -> None:
        """
        Assert that :obj:`coerce` rejects ``value`` with a :obj:`BadSpecifier` whose
        message holds every fragment.
        """
        e = self.assertRaises(BadSpecifier, coerce, value)
        for fragment in fragments:
            self.assertIn(fragment, str(e))

    def test_notSpecifier(self):
        """When coerce gets an int, None, object or bytes, then the message names the type."""
        self.assertBad(1, "int", "1")
        self.assertBad(None, "NoneType")
        self.assertBad(object(), "object")
        self.assertBad(b"poe://K/S/go", "bytes")
        self.assertBad(1.5, "float")
        self.assertBad({"KERNEL", "SESSION", "STATE"}, "set")

    def test_listLength(self):
        """When the list form has other than three items, then the message gives the count."""
        self.assertBad([], "0 items")
        self.assertBad(["K", "S"], "2 items")
        self.assertBad(["K", "S", "go", "x"], "4 items")
        self.assertBad(("K",), "1 items")

    def test_listNonStringKernel(self):
        """When a kernel list holds a non-string, then the message names it."""
        self.assertBad([["k", 1], "S", "go"], "kernel", "int")
        self.assertBad([[None], "S", "go"], "kernel", "NoneType")

    def test_listNonStringSession(self):
        """When a session list holds a non-string, then the message names it."""
        self.assertBad(["K", ["s", 2.5], "go"], "session", "float")

    def test_listPartWrongType(self):
        """When a kernel or session part is neither string nor list, then the message names it."""
        self.assertBad([1, "S", "go"], "kernel", "int")
        self.assertBad(["K", None, "go"], "session", "NoneType")
        self.assertBad(["K", {"a": 1}, "go"], "session", "dict")

    def test_listEmptyParts(self):
        """When a kernel or session part is an empty list or string, then the message names it."""
        self.assertBad([[], "S", "go"], "kernel", "empty")
        self.assertBad(["K", [], "go"], "session", "empty")
        self.assertBad(["", "S", "go"], "kernel", "empty")
        self.assertBad(["K", [""], "go"], "session", "empty")

    def test_listBadState(self):
        """When the list state is missing, empty, non-string or holds '/', then the message names the state."""
        self.assertBad(["K", "S", None], "state", "NoneType")
        self.assertBad(["K", "S", ""], "state", "empty")
        self.assertBad(["K", "S", 3], "state", "int")
        self.assertBad(["K", "S", "a/b"], "state", "'a/b'")

    def test_listWildcardMixed(self):
        """When '*' is mixed into a kernel or session list, then the message names the part."""
        self.assertBad([["*", "a"], "S", "go"], "kernel", "wildcard")
        self.assertBad(["K", ["s", "*"], "go"], "session", "wildcard")
        self.assertBad(["K", "*,s", "go"], "session", "'*,s'")

    def test_listForbiddenCharacters(self):
        """When a list member holds '/', ',' or '*', then the message quotes it."""
        self.assertBad([["a/b"], "S", "go"], "kernel", "'a/b'")
        self.assertBad([["a,b"], "S", "go"], "kernel", "'a,b'")
        self.assertBad(["K", ["s*"], "go"], "session", "'s*'")
        self.assertBad(["K", ["s\x01"], "go"], "session", repr("s\x01"))

    def test_dictMissingKey(self):
        """When the dict form misses a key, then the message lists the keys given."""
        self.assertBad({"KERNEL": "K", "SESSION": "S"}, "KERNEL", "SESSION", "STATE")
        self.assertBad({}, "[]")

    def test_dictExtraKey(self):
        """When the dict form has an extra key, then the message names it."""
        self.assertBad(
            {"KERNEL": "K", "SESSION": "S", "STATE": "go", "EXTRA": 1}, "EXTRA"
        )

    def test_dictWrongCase(self):
        """When the dict keys are lower case, then BadSpecifier names them."""
        self.assertBad({"kernel": "K", "session": "S", "state": "go"}, "kernel")

    def test_dictNonStringKey(self):
        """When the dict form has a non-string key, then BadSpecifier is raised."""
        self.assertBad({"KERNEL": "K", "SESSION": "S", "STATE": "go", 1: 2}, "1")

    def test_dictBadParts(self):
        """When a dict value is malformed, then the message names that part."""
        self.assertBad({"KERNEL": "", "SESSION": "S", "STATE": "go"}, "kernel")
        self.assertBad({"KERNEL": "K", "SESSION": ["s", "*"], "STATE": "go"}, "session")
        self.assertBad({"KERNEL": "K", "SESSION": "S", "STATE": None}, "state")
        self.assertBad({"KERNEL": "K", "SESSION": "S", "STATE": "a\x00"}, "state")


class PropertyTests(SynchronousTestCase):
    """
    Hypothesis property tests for round trips and for the promise that only
    :obj:`BadSpecifier` escapes.
    """

    def assertOnlyBadSpecifier(self, f: Callable[[Any], Any], value: Any) -> None:
        """
        Assert that ``f(value)`` returns a :obj:`Specifier` or raises
        :obj:`BadSpecifier`, and nothing else.
        """
        try:
            result = f(value)
        except BadSpecifier:
            return
        self.assertIsInstance(result, Specifier)

    @settings(max_examples=200, deadline=None)
    @given(specifiers)
    def test_roundTrip(self, d):
        """When a valid Specifier is printed and parsed, then an equal one comes back."""
        self.assertEqual(parse(str(d)), d)
        self.assertEqual(coerce(str(d)), d)
        self.assertEqual(str(parse(str(d))), str(d))

    @settings(max_examples=200, deadline=None)
    @given(specifiers.filter(lambda d: d.state is not None))
    def test_listAndDictForms(self, d):
        """When a full Specifier is given as a list or dict of its parts, then coerce gives it back."""
        self.assertEqual(coerce([list(d.kernels), list(d.sessions), d.state]), d)
        self.assertEqual(coerce([",".join(d.kernels), ",".join(d.sessions), d.state]), d)
        self.assertEqual(
            coerce({"KERNEL": list(d.kernels), "SESSION": ",".join(d.sessions), "STATE": d.state}),
            d,
        )

    @settings(max_examples=200, deadline=None)
    @given(st.lists(names, min_size=1, max_size=8), st.lists(names, min_size=1, max_size=8))
    def test_duplicatesRemoved(self, kernels, sessions):
        """When names repeat, then each is kept once in the order first seen."""
        d = Specifier.build(kernels, sessions, "go")
        self.assertEqual(set(d.kernels), set(kernels))
        self.assertEqual(len(set(d.kernels)), len(d.kernels))
        self.assertEqual(list(d.kernels), sorted(set(kernels), key=kernels.index))
        self.assertEqual(list(d.sessions), sorted(set(sessions), key=sessions.index))
        self.assertEqual(parse(str(d)), d)

    @settings(max_examples=200, deadline=None)
    @given(specifiers)
    def test_hashStable(self, d):
        """When a Specifier is rebuilt from its string, then it hashes the same."""
        self.assertEqual(hash(parse(str(d))), hash(d))

    @settings(max_examples=200, deadline=None)
    @given(garbageText)
    def test_garbageText(self, text):
        """When any text is parsed or coerced, then a Specifier or BadSpecifier results."""
        self.assertOnlyBadSpecifier(parse, text)
        self.assertOnlyBadSpecifier(coerce, text)

    @settings(max_examples=200, deadline=None)
    @given(scalars)
    def test_garbageScalarsParse(self, value):
        """When parse gets any hashable scalar, then a Specifier or BadSpecifier results."""
        self.assertOnlyBadSpecifier(parse, value)

    @settings(max_examples=200, deadline=None)
    @given(shallowGarbage)
    def test_garbageShallow(self, value):
        """When coerce gets a scalar, list or dict whose parts nest at most one list deep, then a Specifier or BadSpecifier results."""
        self.assertOnlyBadSpecifier(coerce, value)


class UnhashableInputTests(SynchronousTestCase):
    """
    Unhashable input (lists, dicts where strings belong) raises
    :obj:`BadSpecifier`, not :obj:`TypeError` (it once escaped through the cache and
    the duplicate removal).
    """

    def test_parseList(self):
        """When parse gets a list, then BadSpecifier (not TypeError from lru_cache) is raised."""
        self.assertRaises(BadSpecifier, parse, ["poe://K/S/go"])


    def test_parseDict(self):
        """When parse gets a dict, then BadSpecifier (not TypeError from lru_cache) is raised."""
        self.assertRaises(BadSpecifier, parse, {"KERNEL": "K"})


    def test_listMemberList(self):
        """When a kernel list holds a list, then BadSpecifier (not TypeError from dict.fromkeys) is raised."""
        self.assertRaises(BadSpecifier, coerce, [["k", ["x"]], "S", "go"])


    def test_listMemberDict(self):
        """When a session list holds a dict, then BadSpecifier (not TypeError from dict.fromkeys) is raised."""
        self.assertRaises(BadSpecifier, coerce, {"KERNEL": "K", "SESSION": [{}], "STATE": "go"})


    @settings(max_examples=200, deadline=None)
    @given(deepGarbage)
    def test_garbageDeep(self, value):
        """When coerce gets any nested JSON-ish value, then a Specifier or BadSpecifier results."""
        try:
            result = coerce(value)
        except BadSpecifier:
            return
        self.assertIsInstance(result, Specifier)



class RepeatedWildcardTests(SynchronousTestCase):
    def test_repeated_wildcard(self):
        """When '*' is repeated in a list, then BadSpecifier (it is mixed into a list)."""
        self.assertRaises(BadSpecifier, parse, "poe://*,*/s/go")
        self.assertRaises(BadSpecifier, parse, "poe://k/*,*/go")

    def test_c1_controls(self):
        """When a name or state holds a C1 control character, then BadSpecifier."""
        self.assertRaises(BadSpecifier, check_name, "a\x85b")
        self.assertRaises(BadSpecifier, check_state, "a\x9bb")
