"""`python -m tests.probe postgres|redis URL`: exit 0 when the service answers, 1 when not."""

import sys


def reachable(kind: str, url: str) -> bool:
    try:
        if kind == "postgres":
            import psycopg

            psycopg.connect(url, connect_timeout=3).close()
        elif kind == "redis":
            import redis

            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        else:
            raise SystemExit(f"unknown service {kind!r}")
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(0 if reachable(sys.argv[1], sys.argv[2]) else 1)
