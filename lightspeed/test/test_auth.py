# -*- test-case-name: lightspeed.test.test_auth -*-
"""
Authentication hooks and undeliverable notices, across in-memory meshes.
"""

from __future__ import annotations

from typing import Any, List

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.errors import RemoteError
from lightspeed.test.test_mesh import Sink, build


class Asker:
    """
    A session on kernel 'a' that records answers and undeliverable notices.
    """

    def __init__(self, kernel: Any) -> None:
        self.notices: List[Any] = []
        self.replies: List[Any] = []
        self.session = kernel.spawn(inline_states={
            "_start": lambda e: e.kernel.alias_set("asker"),
            "_undeliverable": lambda e: self.notices.append(e.args),
            "reply": lambda e: self.replies.append(e.args),
        })


class UndeliverableTests(SynchronousTestCase):
    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, self.links = build("abc", "ab bc")
        self.k["c"].spawn(Sink("s", self.log))
        self.asker = Asker(self.k["a"])

    def post_as_asker(self, *args: Any) -> None:
        self.k["a"].call(self.asker.session, "_undeliverable", "warm-up")  # sanity: the state exists
        self.asker.notices.clear()
        self.k["a"].local.current = self.asker.session
        try:
            self.k["a"].post(*args)
        finally:
            self.k["a"].local.current = None
        self.mesh.settle()

    def test_unknown_remote_session(self):
        """When a post names a session the remote kernel lacks, then the sender gets _undeliverable with the reason and args."""
        self.post_as_asker("poe://c/nobody/hit", 1, "two")
        (notice,) = self.asker.notices
        self.assertEqual(notice[0], "poe://c/nobody/hit")
        self.assertIn("no session 'nobody'", notice[1])
        self.assertEqual(notice[2], [1, "two"])

    def test_unknown_kernel(self):
        """When a post names a kernel nobody knows, then the sender gets _undeliverable at once."""
        self.post_as_asker("poe://zz/s/hit", 1)
        (notice,) = self.asker.notices
        self.assertIn("zz", notice[1])
        self.assertEqual(notice[2], (1,))

    def test_unknown_local_session(self):
        """When a post names a missing local session, then the sender gets _undeliverable."""
        self.post_as_asker("poe://a/nobody/hit", 1)
        self.assertEqual(self.asker.notices, [("poe://a/nobody/hit", "no session 'nobody' in kernel 'a'", (1,))])

    def test_no_route_at_relay(self):
        """When a relay has no route onwards (or the hop limit is reached), then it drops the message and tells the monitor; the origin, which still holds it, is the one that reports."""
        from lightspeed.message import POST
        from lightspeed.wire.codec import dumps

        events: List[Any] = []
        self.k["b"].monitor_register("undeliverable", lambda topic, info: events.append(info["reason"]))
        payload = dumps([POST, ["s"], "hit", [7], "asker", None, None, None])
        inc = self.k["a"].network.incarnation
        self.k["b"].network.relay.routed("a", inc, [("zz", 1, 1, 0)], 5, None, payload, "a")
        self.k["b"].network.relay.routed("a", inc, [("c", 1, 1, 0)], 1, None, payload, "a")
        self.mesh.settle()
        self.assertEqual(events, ["no route to kernel 'zz'", "hop limit reached to kernel 'c'"])
        self.assertEqual(self.k["b"].network.relay.dropped, 2)
        self.assertEqual(self.asker.notices, [])
        self.assertEqual(self.log, [])

    def test_no_bounce_loop(self):
        """When the sender of an undeliverable message has gone too, then the notice is only logged (no ping-pong)."""
        self.k["a"].stop_session(self.asker.session)
        self.k["c"].post("poe://a/nobody/hit")  # from outside a session: nothing to bounce to
        self.mesh.settle()
        self.assertEqual(self.log, [])


class AuthHookTests(SynchronousTestCase):
    def setUp(self):
        self.log: List[Any] = []
        self.mesh, self.k, _ = build("ab", "ab")
        self.sink = self.k["b"].spawn(Sink("s", self.log))
        self.k["b"].spawn(Sink("t", self.log))
        self.asker = Asker(self.k["a"])
        self.seen: List[Any] = []

    def send(self, dest: str, *args: Any) -> None:
        self.k["a"].local.current = self.asker.session
        try:
            self.k["a"].post(dest, *args)
        finally:
            self.k["a"].local.current = None
        self.mesh.settle()

    def test_star_hook_refuses_with_notice(self):
        """When the '*' post hook refuses, then nothing is delivered and the sender hears the reason."""
        def hook(request):
            self.seen.append(request)
            return "not today"

        self.k["b"].auth_register("post", "*", hook)
        self.send("poe://b/s/hit", 1)
        self.assertEqual(self.log, [])
        self.assertEqual(self.asker.notices[0][1], "not today")
        request = self.seen[0]
        self.assertEqual((request.kind, request.state, request.args), ("post", "hit", (1,)))
        self.assertIs(request.session, self.sink)
        self.assertEqual((request.sender.remote_kernel, request.sender.remote_session), ("a", "asker"))

    def test_specific_hook_wins(self):
        """When a session has its own hook, then it decides for that session and '*' for the others."""
        self.k["b"].auth_register("post", "*", lambda r: False)
        self.k["b"].auth_register("post", "s", lambda r: True)
        self.send("poe://b/s,t/hit", 1)
        self.assertEqual([x[1] for x in self.log], ["s"])
        self.assertEqual(len(self.asker.notices), 1)
        self.assertIn("refused", self.asker.notices[0][1])

    def test_unregister(self):
        """When a hook is unregistered, then messages flow again."""
        self.k["b"].auth_register("post", "s", lambda r: False)
        self.assertIs(self.k["b"].auth_unregister("post", "s"), True)
        self.assertIs(self.k["b"].auth_unregister("post", "s"), False)
        self.send("poe://b/s/hit", 1)
        self.assertEqual(len(self.log), 1)

    def test_call_hook_sees_rsvp(self):
        """When a call arrives, then the call hook sees its RSVP and a refusal blocks it."""
        self.k["b"].auth_register("call", "s", lambda r: self.seen.append(r.rsvp) or False)
        self.k["a"].call("poe://b/s/ask", "poe://a/asker/reply", 1)
        self.mesh.settle()
        self.assertEqual(self.seen, ["poe://a/asker/reply"])
        self.assertEqual(self.asker.replies, [])

    def test_request_refused(self):
        """When a request is refused by a hook, then it fails with RemoteError 'Refused' naming the reason."""
        self.k["b"].auth_register("call", "*", lambda r: "closed for requests")
        d = self.k["a"].request("poe://b/s/ask")
        self.mesh.settle()
        error = self.failureResultOf(d, RemoteError).value
        self.assertEqual((error.remote_type, error.remote_message), ("Refused", "closed for requests"))

    def test_hook_raising_refuses(self):
        """When a hook raises, then the message is refused and the error logged."""
        def hook(request):
            raise KeyError("bug")

        self.k["b"].auth_register("post", "*", hook)
        self.send("poe://b/s/hit", 1)
        self.assertEqual(self.log, [])
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_unknown_kind(self):
        """When a hook kind is unknown, then ValueError."""
        self.assertRaises(ValueError, self.k["b"].auth_register, "poste", "*", lambda r: True)


class CallReplyHookTests(SynchronousTestCase):
    def test_callreply_hook(self):
        """When a call's reply comes back from another kernel, then the callreply hook decides, not the post hook."""
        mesh, k, _ = build("ab", "ab")
        k["b"].spawn(Sink("s", []))
        replies: List[Any] = []
        k["a"].spawn(inline_states={"_start": lambda e: e.kernel.alias_set("r"),
                                    "reply": lambda e: replies.append(e.args)})
        seen: List[Any] = []
        k["a"].auth_register("post", "*", lambda r: False)
        k["a"].auth_register("callreply", "r", lambda r: seen.append((r.kind, r.sender.remote_state)) or True)
        k["a"].call("poe://b/s/ask", "poe://a/r/reply", 1)
        mesh.settle()
        self.assertEqual(seen, [("callreply", "ask")])
        self.assertEqual(replies, [({"from": "b", "args": [1]},)])
        k["a"].auth_register("callreply", "r", lambda r: False)
        k["a"].call("poe://b/s/ask", "poe://a/r/reply", 2)
        mesh.settle()
        self.assertEqual(len(replies), 1)
