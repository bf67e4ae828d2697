"""The Celery broker's transport: kombu's Redis transport, made to survive a Redis restart while
the worker has tasks in flight (settings: CELERY_BROKER_TRANSPORT).

What kombu 5.7 does when Redis goes away under a worker (`--pool=threads`, acks late):

1. The consumer sees the connection error and, before reconnecting, `collect()`s the connection:
   it closes the default channel, then detaches the transport (`transport.client = None`).
2. Closing a channel first reads the reply of the BRPOP in flight (kombu#1733, so a popped
   message is not lost). With Redis gone that read raises a connection error, which aborts the
   close halfway; `collect()` swallows it, and the channel stays open.
3. The consumer then closes the connection for good: the channel's second close hands its
   unacknowledged messages back to Redis ("Restoring N unacknowledged message(s)"), which builds
   a connection pool from the transport's `client`, now None: AttributeError ('NoneType' object
   has no attribute 'hostname'), not a connection error, so Celery calls it unrecoverable and
   the worker exits. Even past that, each task still running acks its message on that channel
   when it ends, which fails the same way (or on `channel.connection`, None once closed).

So here a close goes through whatever the BRPOP read raises, and a channel remembers the
connection parameters it was opened with: its tasks still in flight ack their messages on the
restarted Redis (where, with persistence, they would otherwise be delivered again after the
visibility timeout), or, while Redis is still down, fail with a connection error that Celery
logs and survives.
"""

import contextlib
import logging
from queue import Empty

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)


class Channel(kombu_redis.Channel):
    _sync_params: dict | None = None

    def close(self):
        if self._in_poll:
            with contextlib.suppress(Empty, *self.connection_errors):
                self._brpop_read()  # the BRPOP's connection is gone, and any reply with it
        try:
            super().close()
        except self.connection_errors as error:
            # What closing tells the broker (fanout bindings, unacknowledged messages handed
            # back) cannot reach it; tasks still running ack their own messages later.
            logger.info("broker channel closed without the broker: %r", error)
            self.closed = True
            self._disconnect_pools()

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport is not None and transport.client is not None:
            params = super()._connparams(asynchronous=asynchronous)
            if not asynchronous:  # the synchronous pool's (acks, restores) hold no channel
                self._sync_params = dict(params)
            return params
        if asynchronous or self._sync_params is None:
            raise RedisConnectionError("this broker channel was closed with its connection")
        return dict(self._sync_params)


class Transport(kombu_redis.Transport):
    Channel = Channel
