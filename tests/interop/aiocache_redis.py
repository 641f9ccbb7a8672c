"""Python side of the Redis interop test (tests/redis.rs): aiocache 0.12 against the same redis-server.

    python3 aiocache_redis.py PORT write   # store values the Rust side then reads
    python3 aiocache_redis.py PORT read    # read what the Rust side stored; prints one JSON object

Both use namespace "ns", JsonSerializer for JSON values and StringSerializer for text.
"""

import asyncio
import json
import sys

from aiocache import RedisCache
from aiocache.serializers import JsonSerializer, StringSerializer


def caches(port):
    json_cache = RedisCache(endpoint="127.0.0.1", port=port, namespace="ns", serializer=JsonSerializer())
    str_cache = RedisCache(endpoint="127.0.0.1", port=port, namespace="ns", serializer=StringSerializer())
    return json_cache, str_cache


async def write(json_cache, str_cache):
    await json_cache.set(
        "py:dict",
        {"name": "Zoë", "tags": ["a", "b"], "n": 3, "f": 1.5, "none": None, "nested": {"x": [1, {"y": True}]}},
    )
    await json_cache.set("py:none", None)
    await json_cache.set("py:ttl", "short-lived", ttl=100)
    await json_cache.multi_set([("py:m1", [1, 2, 3]), ("py:m2", {"k": "v"})], ttl=100)
    await json_cache.add("py:added", "first")
    await json_cache.increment("py:counter", 5)
    await str_cache.set("py:text", "héllo wörld")
    await str_cache.set("py:number", 42)
    return {"ok": True}


async def read(json_cache, str_cache):
    out = {}
    out["dict"] = await json_cache.get("rs:dict")
    out["list"] = await json_cache.get("rs:list")
    out["unicode"] = await json_cache.get("rs:unicode")
    out["none_exists"] = await json_cache.exists("rs:none")
    out["none"] = await json_cache.get("rs:none", default="missing")
    out["multi"] = await json_cache.multi_get(["rs:list", "rs:missing", "rs:m1"])
    out["text"] = await str_cache.get("rs:text")
    out["number"] = await str_cache.get("rs:number")
    out["counter"] = await json_cache.increment("rs:counter", 1)
    out["ttl_key_exists"] = await json_cache.exists("rs:ttl")
    return out


async def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    json_cache, str_cache = caches(port)
    try:
        result = await (write if mode == "write" else read)(json_cache, str_cache)
    finally:
        await json_cache.close()
        await str_cache.close()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
