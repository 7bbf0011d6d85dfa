"""
The contracts between lightspeed's parts.

Each part sees the others only through these interfaces, so that imports
point one way (see ``docs/architecture.rst``):

- :class:`IDelivery`: what the network may ask of the local runtime
  (find a session, queue or run an event).
- :class:`IKernelPort`: what the network may ask of its kernel besides
  delivery (authentication, control operations, membership news).
- :class:`INetworkPort`: what a kernel may ask of its network.
- :class:`ILinkOwner`: what a link (:mod:`lightspeed.wire.protocol`) may
  call on whoever owns it.
- :class:`IEventSink`: where network events go (the monitor now, traces
  later).
- :class:`IKernel`: the public kernel as the features (monitor,
  introspection, control operations) see it.
"""

from zope.interface import Attribute, Interface

__all__ = ["IDelivery", "IKernelPort", "INetworkPort", "ILinkOwner", "IEventSink", "IKernel"]


class IEventSink(Interface):
    """
    Receives network events (see :mod:`lightspeed.monitor` for the topics
    and what each event holds).
    """

    sent = Attribute("True while someone watches the 'sent' topic (read before building an event).")
    arrived = Attribute("True while someone watches the 'arrived' topic.")
    undeliverable = Attribute("True while someone watches the 'undeliverable' topic.")

    def watching(topic):
        """
        :returns: whether anyone watches ``topic``.
        """

    def emit(topic, **info):
        """
        Report one event of ``topic`` with ``info`` (plain values only).
        """

    def tally(reason, category=None):
        """
        Count one undeliverable message (watched or not) under the
        category of ``reason`` (see :func:`lightspeed.stats.reason_category`),
        or under ``category`` when given.
        """


class IDelivery(Interface):
    """
    The local runtime as the network sees it: sessions to find, events to
    queue or run.  Sessions and senders are opaque to the network except
    for the attributes named here.
    """

    name = Attribute("The kernel's name.")
    aliases = Attribute("A read-only mapping of alias to session (the network's fast path reads it).")
    current = Attribute("The session whose handler runs now, or None.")

    def lookup(name):
        """
        :returns: the session with alias or id ``name``, or ``None``.
        """

    def aliased_sessions():
        """
        :returns: every session that has an alias, each once, oldest alias first.
        """

    def wire_name(sender):
        """
        :returns: the name ``sender`` goes by on the wire (its first alias,
            else its id), or ``None`` for the kernel itself.
        """

    def session_names(session):
        """
        :returns: every alias of ``session`` and its id, as strings (what
            authentication hooks are looked up by).
        """

    def handles(session, state):
        """
        :returns: whether ``session`` has its own handler for ``state``.
        """

    def enqueue(session, state, args, sender, cstate, cfile, cline):
        """
        Queue an event for ``session``; it runs in FIFO order.
        """

    def call_now(session, state, args, sender, cstate, cfile, cline):
        """
        Run ``state`` of ``session`` now and return its value (a coroutine
        becomes a Deferred).

        :raises NoSuchSession: if it has neither the state nor ``_default``.
        """

    def reply(session, state, rsvp, result):
        """
        Post ``result`` (once ready, if a Deferred) to the RSVP specifier
        ``rsvp`` as ``session`` in ``state``.
        """

    def log_failure(session, state, failure=None):
        """
        Log that the handler of ``state`` in ``session`` raised.
        """

    def undeliverable(spec, reason, caller=(None, None), sender=None, args=(), logged=False):
        """
        Log a message of a local sender that cannot be delivered (unless
        ``logged``), report it to the event sink, and give it to the
        sender's ``_undeliverable`` state, if it has one.
        """

    def run_soon():
        """
        Run one batch of queued events now if any wait and no handler runs.
        """


class IKernelPort(Interface):
    """
    What the network may ask of its kernel.
    """

    name = Attribute("The kernel's name.")
    reactor = Attribute("The IReactorTime everything is timed by.")
    local = Attribute("The kernel's IDelivery (its local runtime).")
    events = Attribute("The kernel's IEventSink.")
    guarded = Attribute("True while any authentication hook is registered.")

    def post(dest, *args):
        """
        Post as the current session (remote senders' postbacks use it).
        """

    def authorize(kind, session, state, rsvp, sender, args):
        """
        Ask the authentication hooks whether a message from another kernel
        may reach ``session``.

        :returns: ``None`` to deliver, else the reason for refusing.
        """

    def control(op, sessions, args, sender):
        """
        Run a CONTROL operation another kernel asked for.

        :returns: the answer or a Deferred of it.
        :raises LightspeedError: (or ``ValueError``) for a refusal or bad arguments.
        """

    def monitor_event(origin, sessions, state, args, sender):
        """
        A message from ``origin`` that may be a monitor event for a target
        this kernel registered there.

        :returns: whether it was one (and was handled).
        """

    def membership_changed(gone, joined):
        """
        Kernels left (or restarted: their old incarnation) and joined (their
        new one): each a list of ``(name, incarnation)``, in that order.
        """


class INetworkPort(Interface):
    """
    What a kernel may ask of its network.
    """

    name = Attribute("The kernel's name.")
    incarnation = Attribute("This start's incarnation.")

    def send(spec, kernels, args, sender, cstate, cfile, cline, rsvp=None, reply=False, ttl=None):
        """
        Send a post (a call with ``rsvp``; a call's value with ``reply``) to
        ``kernels`` (``('*',)``: every other reachable kernel).  Unreachable
        kernels are reported to the sender as undeliverable.  ``ttl`` is
        the message's time to live in seconds, or ``None``.

        :raises EncodeError: if an argument cannot travel or is too large.
        """

    def post_planned(dest, plan, args, sender, cstate, where, offset, ttl):
        """
        :meth:`send` of a post to ``plan``, ``(specifier, kernels)`` parsed
        from the text ``dest`` (none of the kernels this one), from the call
        site ``where`` and ``offset`` (a code object and instruction offset,
        or a file and line): what the runtime's post of a ``poe://`` text
        it has seen before calls.
        """

    def request_planned(dest, plan, args, sender, cstate, where, offset, timeout):
        """
        :meth:`request` of one session of one other kernel, ``plan``
        parsed from the text ``dest``, from the call site ``where`` and
        ``offset`` (as for :meth:`post_planned`): what the runtime's request
        to a ``poe://`` text it has seen before calls.

        :returns: a Deferred of the value; every failure comes through it.
        """

    def request(spec, kernel, args, sender, cstate, caller, timeout):
        """
        Call one state of one session of ``kernel`` from the call site
        ``caller``: ``(file, line)``, or a code object and an instruction
        offset.

        :returns: a Deferred of the value; every failure comes through it.
        """

    def control(kernel, op, sessions, args, sender, cstate, caller, timeout):
        """
        Run a control operation at ``kernel``.

        :returns: a Deferred of the answer; every failure comes through it.
        """

    def bounce(kernel, session, destination, reason, args):
        """
        Tell ``session`` (a wire name) of ``kernel`` that its message to
        ``destination`` was not delivered, as an ``_undeliverable`` event.
        """

    def reachable():
        """
        :returns: the names of the other kernels that can be reached.
        """

    def incarnations():
        """
        :returns: ``{name: incarnation}`` of every reachable kernel, this one included.
        """

    def flush():
        """
        Write every link's waiting output now.
        """

    def close_links(code="shutdown", message="kernel shutting down"):
        """
        Close every link with a BYE.
        """


class ILinkOwner(Interface):
    """
    What a link may call on its owner.
    """

    name = Attribute("The local kernel's name, sent in HELLO.")
    reactor = Attribute("The IReactorTime links are timed by.")
    incarnation = Attribute("The local kernel's incarnation, sent in HELLO.")

    def admit(link, name, incarnation):
        """
        Whether the peer that says HELLO as ``name``/``incarnation`` may join.

        :returns: ``None``, a refusal message, or ``(code, message)``.
        """

    def link_up(link):
        """
        ``link`` finished its handshake.
        """

    def link_down(link):
        """
        ``link`` closed (it may never have come up).
        """

    def message_received(link, message):
        """
        ``link`` received a decoded message after its handshake.

        :raises ProtocolError: if it is malformed; the link closes.
        """

    def routed_received(link, message):
        """
        ``link`` received a ROUTED message of its peer's own stream to this
        kernel, with one destination and its items' types already checked
        (by :class:`~lightspeed.wire.connection.Connection`).

        :raises ProtocolError: if it is malformed; the link closes.
        """

    def mark_dirty(link):
        """
        ``link`` has output waiting; write it at the end of this batch.
        """

    def after_read(link):
        """
        ``link`` handled a read: run what arrived and write the answers now.
        """

    def link_rtt(link, seconds):
        """
        ``link`` (up) timed a round trip: a PONG echoed the token of one of
        its PINGs ``seconds`` after it was sent.
        """


class IKernel(Interface):
    """
    The public kernel, as the features (monitor, introspection, control
    operations) see it.
    """

    name = Attribute("The kernel's name.")
    auth = Attribute("Its lightspeed.auth.AuthHooks.")
    monitor = Attribute("Its lightspeed.monitor.Monitor.")
    local = Attribute("Its IDelivery.")

    def list_kernels():
        """
        :returns: the sorted names of every reachable kernel, itself included.
        """

    def current_session():
        """
        :returns: the session whose handler runs now.

        :raises NoCurrentSession: outside of a handler.
        """

    def sessions_list():
        """
        :returns: the running sessions, oldest first.
        """

    def control_at(kernel, op, sessions, args, timeout, where=(None, None)):
        """
        Run a control operation at ``kernel`` (this one or another).

        :returns: a Deferred of the answer.
        """

    def authorize(kind, session, state, rsvp, sender, args):
        """
        As :meth:`IKernelPort.authorize`.
        """

    def post_as_kernel(cstate, dest, *args):
        """
        Post with the kernel as sender and ``cstate`` as caller state,
        whatever session is current.
        """

    def call_as_kernel(function, *args, cstate=None):
        """
        Call ``function(*args)`` with no session current and ``cstate`` as
        the caller state.
        """
