"""The ESS latch on Redis: JSON in ``{prefix}:ess:state``, every write broadcast on a channel.

``RedisEssStateStore.save`` writes the latch and publishes the same document on
``{prefix}:ess:changed`` in one MULTI/EXEC transaction. ``LatchWatcher`` subscribes to that
channel in a background thread and hands every latch it hears to a callback: this is how a
trigger in one process (``qtrader ess trigger``, the supervisor) reaches every worker within
milliseconds instead of at its next poll. The broadcast only hastens the stop; the store stays
the truth (workers read it before every order), so a lost message delays nothing that matters
by more than a step.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis
from redis.exceptions import RedisError

from quantum_trader.stores.ports import EssState
from quantum_trader.stores.redis.connection import DEFAULT_PREFIX, RedisKeys
from quantum_trader.stores.redis.records import RecordStore

_POLL_SECS = 0.5  # how often the listener looks at its stop flag while the channel is quiet
_RETRY_SECS = 0.5  # pause before resubscribing after the server went away


class RedisEssStateStore(RecordStore[EssState]):
    """The EssStateStore on Redis: every worker and the supervisor share one latch."""

    _name = "ess_state"
    _kind = EssState

    def load(self) -> EssState:
        """Return the stored latch (inactive if none was stored)."""
        state = self._record.load()
        return EssState() if state is None else state

    def save(self, state: EssState) -> None:
        """Store ``state`` atomically and broadcast it; IntegrityError if a field is malformed."""
        self._record.save(state, notify=self.keys.ess_channel)

    def decode(self, document: bytes | str) -> EssState:
        """The latch a broadcast carries; IntegrityError if the message is not one."""
        return self._record.decode(document)


class LatchWatcher:
    """Calls ``on_latch`` with every ESS latch broadcast on the deployment's channel.

    Runs one daemon thread with its own pub/sub connection; after a connection error it waits
    ``_RETRY_SECS`` and subscribes again (a latch written meanwhile is read from the store by
    the worker's own checks). ``on_error`` hears each error (default: ignored).
    """

    def __init__(
        self,
        client: redis.Redis,
        on_latch: Callable[[EssState], None],
        *,
        prefix: str = DEFAULT_PREFIX,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        """Watch the channel of ``prefix`` through ``client``'s connection settings."""
        self._client = client
        self._store = RedisEssStateStore(client, prefix=prefix)
        self.channel = RedisKeys(prefix).ess_channel
        self._on_latch = on_latch
        self._on_error = on_error
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        """Set once the subscription is live (tests wait on it instead of sleeping)."""
        self._thread = threading.Thread(target=self._listen, name="ess-latch-watcher", daemon=True)

    def start(self) -> LatchWatcher:
        """Start listening; returns self."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop listening and wait (at most ``timeout`` s) for the thread to end."""
        self._stop.set()
        self._thread.join(timeout)

    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                self.subscribed.set()
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=_POLL_SECS)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        self._on_latch(self._store.decode(message["data"]))
                    except Exception as exc:  # a failing callback must not end the listener
                        self._report(exc)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                self._report(exc)
                self._stop.wait(_RETRY_SECS)
            finally:
                try:
                    pubsub.close()
                except (RedisError, OSError):
                    pass

    def _report(self, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error(exc)
