"""
The ``twistd lightspeed`` plugin: starts a lightspeed node.  Imports nothing
heavy; the work is in :obj:`lightspeed.tap`.
"""

from twisted.application.service import ServiceMaker

lightspeed_node = ServiceMaker(
    "Lightspeed node",
    "lightspeed.tap",
    "A lightspeed kernel joined to the network (listen, connect, load sessions).",
    "lightspeed",
)
