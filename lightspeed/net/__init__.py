"""
The network layer's parts, each behind the small :class:`lightspeed.network.Network`
façade: links and write coalescing (:mod:`.links`), adverts
(:mod:`.flooding`), forwarding (:mod:`.relay`), request correlation
(:mod:`.requests`), one handler per payload kind (:mod:`.dispatch`) and
kernels joining and leaving (:mod:`.membership`).
"""
