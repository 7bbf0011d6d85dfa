# -*- test-case-name: lightspeed.test.test_callerfiles -*-
"""
What a message to another kernel carries as its sender's source file, under
each ``caller_files`` policy.
"""

from __future__ import annotations

import os
import sys
from typing import Any, List

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from lightspeed import Kernel, Session
from lightspeed.net.callerfiles import CallerFiles, check_policy
from lightspeed.testing import MemoryMesh

HERE = os.path.abspath(__file__.replace(".pyc", ".py"))


def _root_of(path: str) -> str:
    """
    The longest sys.path entry containing ``path``, found independently.
    """
    roots = [os.path.abspath(entry or ".") for entry in sys.path]
    return max((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), key=len)


class Recorder(Session):
    def __init__(self, seen: List[Any]) -> None:
        super().__init__()
        self.seen = seen

    def _start(self, event):
        event.kernel.alias_set("rec")

    def hit(self, event):
        self.seen.append(event.caller_file)

    def ask(self, event):
        self.seen.append(event.caller_file)
        return 1


class PolicyTests(SynchronousTestCase):
    def test_transforms(self):
        """When a file name is converted, then each policy gives its exact form and absolute paths leave only with 'full'."""
        root = _root_of(HERE)
        expected = {"relative": os.path.relpath(HERE, root), "full": HERE, "name": "test_callerfiles.py", "none": ""}
        self.assertEqual(expected["relative"], os.path.join("lightspeed", "test", "test_callerfiles.py"))
        for policy, value in expected.items():
            files = CallerFiles(policy)
            self.assertEqual(files.convert(HERE), value, policy)
            self.assertEqual(files.cache, {HERE: value})
            self.assertIsNone(files.convert(None))

    def test_outside_every_entry_and_pseudo_names(self):
        """When a file is outside every sys.path entry, then 'relative' sends its base name; '<stdin>' goes as it is."""
        files = CallerFiles()
        outside = "/nonexistent-root-for-test/deep/dir/app.py"
        self.assertEqual(files.convert(outside), "app.py")
        self.assertEqual(files.convert("<stdin>"), "<stdin>")
        self.assertEqual(files.convert("pkg/mod.py"), "pkg/mod.py")

    def test_filesystem_root_on_the_path(self):
        """When "/" is on sys.path (a program started in / has "" there), then it is no root for 'relative'."""
        self.patch(sys, "path", ["/", ""] + sys.path)
        self.patch(os, "getcwd", lambda: "/")
        self.assertEqual(CallerFiles().convert("/nonexistent-root-for-test/deep/dir/app.py"), "app.py")

    def test_policy_change_clears_cache(self):
        """When the policy changes, then the cache is emptied and new conversions follow the new policy."""
        files = CallerFiles("full")
        files.convert(HERE)
        files.policy = "name"
        self.assertEqual(files.cache, {})
        self.assertEqual(files.convert(HERE), "test_callerfiles.py")

    def test_bad_policy(self):
        """When an unknown policy is given, then ValueError names the choices."""
        self.assertRaises(ValueError, CallerFiles, "absolute")
        with self.assertRaises(ValueError) as e:
            check_policy("x")
        self.assertIn("relative, full, name, none", str(e.exception))


class RemoteTests(SynchronousTestCase):
    def receive(self, policy: Any) -> List[Any]:
        mesh = MemoryMesh()
        a, b = mesh.kernel("cf-a"), mesh.kernel("cf-b")
        if policy is not None:
            a.caller_files = policy
        mesh.link(a, b)
        mesh.settle()
        seen: List[Any] = []
        b.spawn(Recorder(seen))
        a.post("poe://cf-b/rec/hit")
        d = a.request("poe://cf-b/rec/ask")
        mesh.settle()
        self.assertEqual(self.successResultOf(d), 1)
        return seen

    def test_each_policy_at_the_receiver(self):
        """When kernel a sends a post and a request under each policy, then b's event.caller_file is exactly that form."""
        relative = os.path.relpath(HERE, _root_of(HERE))
        for policy, value in [(None, relative), ("relative", relative), ("full", HERE),
                              ("name", "test_callerfiles.py"), ("none", "")]:
            self.assertEqual(self.receive(policy), [value, value], policy)

    def test_set_before_and_after_network_start(self):
        """When the policy is set before or after the kernel joined the network, then its network follows it."""
        early = Kernel("cf-early", reactor=Clock())
        early.caller_files = "full"
        self.assertEqual(early.network_start().caller_files.policy, "full")
        a = MemoryMesh().kernel("cf-late")
        a.caller_files = "name"
        self.assertEqual((a.caller_files, a.network.caller_files.policy), ("name", "name"))
        with self.assertRaises(ValueError):
            a.caller_files = "bogus"
        self.assertEqual(a.caller_files, "name")


class Tagger(Recorder):
    """
    Records the caller file, line, sender name and argument of each ``hit``.
    """

    def hit(self, event):
        self.seen.append((event.caller_file, event.caller_line, event.sender.id, event.arg0))


class RepeatedCallSiteTests(SynchronousTestCase):
    """
    A post from a call site seen before reuses the encoded fields around its
    arguments (Network.post_planned): what the receiver sees must still
    follow the policy, the sender's name and the line as they are now.
    """

    def setUp(self) -> None:
        self.mesh = MemoryMesh()
        self.a, self.b = self.mesh.kernel("rc-a"), self.mesh.kernel("rc-b")
        self.mesh.link(self.a, self.b)
        self.mesh.settle()
        self.seen: List[Any] = []
        self.b.spawn(Tagger(self.seen))
        self.mesh.settle()

    def post_all(self, values: List[Any], between: Any) -> None:
        for value in values:
            between(value)
            self.a.post("poe://rc-b/rec/hit", value)  # one call site for every value
            self.mesh.settle()

    def test_policy_change_between_posts(self):
        """When the policy changes between posts from one call site, then each arrives with the policy of its time."""
        policies = ["full", "name", "none", "full"]
        self.post_all(policies, lambda policy: setattr(self.a, "caller_files", policy))
        self.assertEqual([seen[0] for seen in self.seen], [HERE, "test_callerfiles.py", "", HERE])
        self.assertEqual([seen[3] for seen in self.seen], policies)

    def test_sender_alias_change_between_posts(self):
        """When the posting session's first alias changes between posts from one call site, then each carries its name then."""
        poster = self.a.spawn(inline_states={"_start": lambda e: e.kernel.alias_set("first")})
        self.mesh.settle()

        def rename(value: str) -> None:
            self.a.local.current = None
            self.a.alias_set(value, poster)
            self.a.alias_remove(self.a.alias_list(poster)[0], poster)
            self.a.local.current = poster

        self.post_all(["one", "two", "one"], rename)
        self.a.local.current = None
        self.assertEqual([seen[2] for seen in self.seen], ["poe://rc-a/one/", "poe://rc-a/two/", "poe://rc-a/one/"])
        self.assertEqual(len({seen[1] for seen in self.seen}), 1)

    def test_two_lines_two_fields(self):
        """When posts come from two lines, then each arrives with its own line."""
        self.a.post("poe://rc-b/rec/hit", 1)
        self.a.post("poe://rc-b/rec/hit", 2)
        self.mesh.settle()
        lines = [seen[1] for seen in self.seen]
        self.assertEqual(lines[1] - lines[0], 1)
