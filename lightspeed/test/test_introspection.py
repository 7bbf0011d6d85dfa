# -*- test-case-name: lightspeed.test.test_introspection -*-
"""
Introspection across in-memory meshes: list_kernels, list_sessions,
list_states, and the introspection authentication hooks.
"""

from __future__ import annotations

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed import BadSpecifier, Kernel, NoRoute, NoSuchSession
from lightspeed.errors import RemoteError
from lightspeed.test.test_mesh import Sink, build


def result(case: SynchronousTestCase, mesh: Any, d: Any) -> Any:
    mesh.settle()
    return case.successResultOf(d)


def failure(case: SynchronousTestCase, mesh: Any, d: Any, *types: type) -> Any:
    mesh.settle()
    return case.failureResultOf(d, *types)


class Recorder:
    """
    A session on ``kernel`` aliased ``alias`` that records 'got' and
    '_undeliverable' events.
    """

    def __init__(self, kernel: Kernel, alias: str) -> None:
        self.got: List[Any] = []
        self.notices: List[Any] = []
        self.session = kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set(alias),
            "got": lambda e: self.got.append(e.args),
            "_undeliverable": lambda e: self.notices.append(e.args),
        })


class IntrospectionTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, self.links = build("abc", "ab bc")
        self.log: List[Any] = []
        self.k["c"].spawn(Sink("s", self.log))
        self.k["c"].spawn(Sink("secret", self.log))
        self.k["c"].alias_set("second", self.k["c"].resolve("s"))
        self.mesh.settle()

    def test_list_kernels(self):
        """When kernels are linked, then list_kernels names every reachable kernel and this one, sorted."""
        self.assertEqual(self.k["a"].list_kernels(), ["a", "b", "c"])
        self.assertEqual(Kernel("alone").list_kernels(), ["alone"])
        self.links["bc"].close()
        self.mesh.settle()
        self.assertEqual(self.k["a"].list_kernels(), ["a", "b"])

    def test_list_kernels_incarnations(self):
        """When asked with incarnations=True, then list_kernels maps the same sorted names to each kernel's incarnation."""
        k = self.k
        answer = k["a"].list_kernels(incarnations=True)
        self.assertEqual(answer, {name: k[name].network.incarnation for name in "abc"})
        self.assertEqual(list(answer), k["a"].list_kernels())
        self.assertEqual(Kernel("alone").list_kernels(incarnations=True), {"alone": None})

    def test_list_sessions_remote(self):
        """When a asks c for its sessions, then it gets every alias of every session."""
        sessions = result(self, self.mesh, self.k["a"].list_sessions("c"))
        self.assertEqual(sessions, [["s", "second"], ["secret"]])

    def test_list_sessions_local(self):
        """When a kernel asks itself, then the answer comes without the network."""
        sessions = result(self, self.mesh, Kernel("solo").list_sessions())
        self.assertEqual(sessions, [])
        self.assertEqual(result(self, self.mesh, self.k["c"].list_sessions("c")), [["s", "second"], ["secret"]])

    def test_list_sessions_rsvp_everyone(self):
        """When asked of '*' with an RSVP, as the seed did, then each kernel's answer is posted there as (kernel, sessions)."""
        me = Recorder(self.k["a"], "me")
        self.k["a"].list_sessions("*", "poe://a/me/got")
        self.mesh.settle()
        self.assertEqual(sorted(me.got), [("a", [["me"]]), ("b", []), ("c", [["s", "second"], ["secret"]])])

    def test_list_sessions_sender(self):
        """When given a remote sender, then its kernel is asked."""
        me = Recorder(self.k["a"], "me")
        seen: List[Any] = []
        self.k["c"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("q"),
                                         "who": lambda e: seen.append(e.sender)})
        self.mesh.settle()
        self.k["a"].post("poe://c/q/who")
        self.mesh.settle()
        self.k["c"].list_sessions(seen[0], "poe://c/q/who")  # answer to c itself
        sessions = result(self, self.mesh, self.k["c"].list_sessions(seen[0]))
        self.assertEqual(sessions, [["me"]])

    def test_list_states(self):
        """When a asks for the states of c's session in every form, then it gets {name: sorted states}."""
        expected = {"s": sorted(self.k["c"].resolve("s").states)}
        self.assertIn("hit", expected["s"])
        for dest in ["poe://c/s", "poe://c/s/", ["c", "s"], {"KERNEL": "c", "SESSION": "s"}]:
            self.assertEqual(result(self, self.mesh, self.k["a"].list_states(dest)), expected)

    def test_list_states_several(self):
        """When a session list or '*' is asked, then each session is keyed by the name asked (or its first alias)."""
        both = result(self, self.mesh, self.k["a"].list_states("poe://c/second,secret"))
        self.assertEqual(sorted(both), ["second", "secret"])
        everyone = result(self, self.mesh, self.k["a"].list_states("poe://c/*"))
        self.assertEqual(sorted(everyone), ["s", "secret"])

    def test_list_states_rsvp(self):
        """When list_states has an RSVP and names kernels '*', then each kernel posts (kernel, states)."""
        me = Recorder(self.k["a"], "me")
        self.k["a"].list_states({"KERNEL": "*", "SESSION": "*"}, "poe://a/me/got")
        self.mesh.settle()
        self.assertEqual(sorted(name for name, _ in me.got), ["a", "b", "c"])
        self.assertEqual(dict(me.got)["b"], {})

    def test_rsvp_sender_is_the_kernel(self):
        """When answers come back to an RSVP, then each one's sender is the asking kernel, local answer included."""
        senders: List[Any] = []
        self.k["a"].spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("me"),
            "go": lambda e: e.kernel.list_sessions(["a", "c"], "poe://a/me/got"),
            "got": lambda e: senders.append((e.args[0], e.sender)),
        })
        self.mesh.settle()
        self.k["a"].post("me", "go")
        self.mesh.settle()
        self.assertEqual(sorted(name for name, _ in senders), ["a", "c"])
        self.assertEqual({id(sender) for _, sender in senders}, {id(self.k["a"])})

    def test_specifier_with_state_refused(self):
        """When list_states gets a Specifier that names a state, then BadSpecifier, as for the string form."""
        from lightspeed import parse

        self.failureResultOf(self.k["a"].list_states(parse("poe://c/s/hit")), BadSpecifier)
        self.assertEqual(list(result(self, self.mesh, self.k["a"].list_states(parse("poe://c/s/")))), ["s"])

    def test_missing_session(self):
        """When the session does not exist, then NoSuchSession."""
        failure(self, self.mesh, self.k["a"].list_states("poe://c/nobody"), NoSuchSession)

    def test_unknown_kernel(self):
        """When the kernel is unknown, then NoRoute; with an RSVP the asking session hears it as _undeliverable."""
        failure(self, self.mesh, self.k["a"].list_sessions("zz"), NoRoute)
        me = Recorder(self.k["a"], "me")
        self.k["a"].call(me.session, "got", "warm-up")
        me.got.clear()
        self.k["a"].local.current = me.session
        try:
            self.k["a"].list_sessions("zz", "poe://a/me/got")
        finally:
            self.k["a"].local.current = None
        self.mesh.settle()
        self.assertEqual(me.got, [])
        (notice,) = me.notices
        self.assertIn("sessions of kernel 'zz' failed", notice[1])

    def test_malformed(self):
        """When a destination is malformed or asks several kernels without an RSVP, then BadSpecifier."""
        self.failureResultOf(self.k["a"].list_states("poe://c/s/state"), BadSpecifier)
        self.failureResultOf(self.k["a"].list_states(["c"]), BadSpecifier)
        self.failureResultOf(self.k["a"].list_states("c/s"), BadSpecifier)
        self.assertRaises(BadSpecifier, self.k["a"].list_sessions, "a/b", "poe://a/me/got")
        failure(self, self.mesh, self.k["a"].list_sessions(["b", "c"]), BadSpecifier)
        self.assertRaises(BadSpecifier, self.k["a"].list_sessions, "c", "poe://a/me")

    def test_unknown_operation(self):
        """When another kernel asks for an operation that does not exist, then it gets an error, not a crash."""
        d = self.k["a"].network.control("c", "bogus", [], (), self.k["a"], None, (None, None), 5)
        error = failure(self, self.mesh, d, RemoteError).value
        self.assertEqual(error.remote_type, "BadSpecifier")
        self.assertIn("bogus", error.remote_message)


class IntrospectionHookTests(SynchronousTestCase):
    def setUp(self):
        self.mesh, self.k, self.links = build("ab", "ab")
        self.log: List[Any] = []
        self.k["b"].spawn(Sink("open", self.log))
        self.k["b"].spawn(Sink("secret", self.log))
        self.mesh.settle()
        self.seen: List[Any] = []

        def hook(request):
            self.seen.append(request)
            return "secret is private" if request.session.alias == "secret" else True

        self.k["b"].auth_register("introspection", "*", hook)

    def test_hidden_from_listing(self):
        """When the hook refuses a session, then other kernels do not see it, and the hook saw the asker."""
        self.assertEqual(result(self, self.mesh, self.k["a"].list_sessions("b")), [["open"]])
        self.assertEqual({r.kind for r in self.seen}, {"introspection"})
        self.assertEqual({r.state for r in self.seen}, {"sessions"})
        self.assertEqual({r.sender.remote_kernel for r in self.seen}, {"a"})

    def test_states_refused(self):
        """When the hook refuses the one session asked about, then the request fails with the hook's reason."""
        error = failure(self, self.mesh, self.k["a"].list_states("poe://b/secret"), RemoteError).value
        self.assertEqual((error.remote_type, error.remote_message), ("Refused", "secret is private"))
        self.assertEqual(list(result(self, self.mesh, self.k["a"].list_states("poe://b/*"))), ["open"])

    def test_specific_hook_wins(self):
        """When a session has its own hook, then it wins over '*'."""
        self.k["b"].auth_register("introspection", "secret", lambda r: True)
        self.assertEqual(result(self, self.mesh, self.k["a"].list_sessions("b")), [["open"], ["secret"]])

    def test_local_not_filtered(self):
        """When a kernel asks itself, then hooks (for other kernels) do not apply."""
        self.assertEqual(result(self, self.mesh, self.k["b"].list_sessions()), [["open"], ["secret"]])
        self.assertEqual(self.seen, [])
