"""
Own adverts coalesced (:obj:`lightspeed.net.flooding.Flooding.originate`):
link changes within one turn, or within ``min_advert_interval`` of the last
advert, go out as one advert of the final links; routes here change at once.
"""

from __future__ import annotations

from typing import Any, FrozenSet

from twisted.trial.unittest import SynchronousTestCase

from lightspeed.testing import MemoryMesh


def advertised(kernel: Any, origin: Any) -> FrozenSet[str]:
    """The links of ``origin`` as ``kernel``'s database holds them."""
    held = kernel.network.router.held(origin.name)
    return frozenset(peer for peer, _ in held.links) if held is not None else frozenset()


class CoalesceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.mesh = MemoryMesh()
        self.a, self.b, self.c, self.d = (self.mesh.kernel(n) for n in "abcd")

    def test_changes_in_one_turn_one_advert(self) -> None:
        """
        Three links of a up together: one advert of a, with all three, and
        no earlier version of it anywhere (the database sync leaves a's own
        advert to the flood that follows).
        """
        for other in (self.b, self.c, self.d):
            self.mesh.link(self.a, other)
        self.mesh.settle()
        self.assertEqual(self.a.network.flooding.own_adverts, 1)
        for other in (self.b, self.c, self.d):
            self.assertEqual(advertised(other, self.a), {"b", "c", "d"})
            self.assertEqual(other.network.router.held("a").seq, self.a.network.router.own().seq)
        self.assertEqual(self.b.network.router.next_hop("c"), "a")

    def test_interval_holds_later_changes(self) -> None:
        """
        With an interval, the first change after a quiet one goes out at
        the end of its turn; the next ones wait for the interval to end and
        go out as one advert of the links as they are then.
        """
        mesh, a, b = self.mesh, self.a, self.b
        a.network.flooding.min_advert_interval = 0.05
        mesh.link(a, b)
        mesh.advance(1.0)
        flooding = a.network.flooding
        self.assertEqual((flooding.own_adverts, advertised(b, a)), (1, {"b"}))
        to_c = mesh.link(a, self.c)
        mesh.settle()
        self.assertEqual((flooding.own_adverts, advertised(b, a)), (2, {"b", "c"}))
        mesh.link(a, self.d)
        mesh.settle()
        to_c.close()
        mesh.settle()
        # a's routes follow at once; its advert waits.
        self.assertEqual((a.network.router.next_hop("d"), a.network.router.next_hop("c")), ("d", None))
        self.assertEqual((flooding.own_adverts, advertised(b, a)), (2, {"b", "c"}))
        mesh.advance(0.04)
        self.assertEqual(flooding.own_adverts, 2)
        mesh.advance(0.02)
        self.assertEqual((flooding.own_adverts, advertised(b, a)), (3, {"b", "d"}))
        self.assertEqual(advertised(self.d, a), {"b", "d"})
        self.assertEqual(b.network.router.next_hop("d"), "a")

    def test_no_advert_left_waiting_without_links(self) -> None:
        """
        The last link going while an advert waits: the wait is dropped
        with the other timers, and the mesh's clock is left empty.
        """
        self.a.network.flooding.min_advert_interval = 0.05
        link = self.mesh.link(self.a, self.b)
        self.mesh.settle()
        link.close()
        self.mesh.settle()
        self.assertEqual(self.mesh.clock.getDelayedCalls(), [])
