#!/usr/bin/python3
"""Writes seed inputs for fuzz_h2 into fuzz/corpus/h2/.

Each seed is what a client sends after the HTTP/2 preface magic (the
harness sends the magic), preceded by one byte that fuzz_h2 uses to pick
its read size. Frames are built by hand: HPACK literals without indexing
or Huffman coding, so the seeds stay readable and deterministic."""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "h2")

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = \
    0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack(headers):
    out = b""
    for name, value in headers:
        name, value = name.encode(), value.encode()
        out += b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value
    return out


def grpc_headers(path, ctype="application/grpc", method="POST", extra=()):
    return [(":method", method), (":scheme", "https"), (":path", path),
            (":authority", "localhost"), ("content-type", ctype), ("te", "trailers")] + list(extra)


def msg(payload, flag=0, length=None):
    return bytes([flag]) + struct.pack(">I", len(payload) if length is None else length) + payload


def settings(**kv):
    ids = {"window": 4, "frame": 5, "streams": 3}
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", ids[k], v) for k, v in kv.items()))


def call(sid, path, body, **kw):
    return frame(HEADERS, END_HEADERS, sid, hpack(grpc_headers(path, **kw))) + \
        frame(DATA, END_STREAM, sid, body)


SEEDS = {
    "echo": settings(window=1 << 20) + call(1, "/t.S/Echo", msg(b"hello")),
    "echo_split_data": settings() + frame(HEADERS, END_HEADERS, 1,
        hpack(grpc_headers("/t.S/Echo"))) + b"".join(
        frame(DATA, 0, 1, bytes([b])) for b in msg(b"abc")) + frame(DATA, END_STREAM, 1),
    "continuation": settings() + frame(HEADERS, 0, 1, hpack(grpc_headers("/t.S/Echo"))[:20]) +
        frame(CONTINUATION, END_HEADERS, 1, hpack(grpc_headers("/t.S/Echo"))[20:]) +
        frame(DATA, END_STREAM, 1, msg(b"x")),
    "unknown_method": settings() + call(1, "/x/y", msg(b"")),
    "bad_content_type": settings() + call(1, "/t.S/Echo", msg(b"1"), ctype="text/plain"),
    "get": settings() + frame(HEADERS, END_HEADERS | END_STREAM, 1,
        hpack(grpc_headers("/t.S/Echo", method="GET"))),
    "lying_prefix": settings() + call(1, "/t.S/Echo", msg(b"short", length=1000)),
    "oversized": settings() + call(1, "/t.S/Echo", msg(b"", length=5 << 20)),
    "two_messages": settings() + call(1, "/t.S/Echo", msg(b"a") + msg(b"b")),
    "no_message": settings() + frame(HEADERS, END_HEADERS | END_STREAM, 1,
        hpack(grpc_headers("/t.S/Echo"))),
    "compressed": settings() + call(1, "/t.S/Echo", msg(b"zz", flag=1),
        extra=[("grpc-encoding", "gzip")]),
    "bad_flag": settings() + call(1, "/t.S/Echo", msg(b"zz", flag=7)),
    "deadline": settings() + call(1, "/t.S/Defer", msg(b"q"), extra=[("grpc-timeout", "0m")]) +
        call(3, "/t.S/Defer", msg(b"q"), extra=[("grpc-timeout", "1x")]),
    "defer_rst": settings() + call(1, "/t.S/Defer", msg(b"q")) +
        frame(RST_STREAM, 0, 1, struct.pack(">I", 8)),
    "stream": settings(window=100000, frame=1 << 20) + call(1, "/t.S/Stream", msg(b"")) +
        frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1 << 20)) +
        frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 20)) +
        frame(RST_STREAM, 0, 1, struct.pack(">I", 8)),
    "park": settings() + call(1, "/t.S/Park", msg(b"")) + call(3, "/t.S/Park", msg(b"")) +
        frame(PING, 0, 0, b"12345678"),
    "many_streams": settings() + b"".join(
        call(sid, ["/t.S/Echo", "/t.S/Defer", "/t.S/Stream", "/t.S/Park"][sid // 2 % 4],
             msg(bytes([sid]) * sid)) for sid in range(1, 80, 2)),
    "control": settings() + frame(SETTINGS, ACK, 0) + frame(PING, 0, 0, b"abcdefgh") +
        frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)) +
        frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)),
    "trailers_from_client": settings() + frame(HEADERS, END_HEADERS, 1,
        hpack(grpc_headers("/t.S/Echo"))) + frame(DATA, 0, 1, msg(b"t")) +
        frame(HEADERS, END_HEADERS | END_STREAM, 1, hpack([("x-trailer", "1")])),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        # Read size byte: 0 -> pieces of 1 byte, 255 -> 1786 bytes.
        for tag, size_byte in (("", 255), ("_bytewise", 0)):
            with open(os.path.join(OUT, name + tag), "wb") as f:
                f.write(bytes([size_byte]) + data)
    print(f"wrote {2 * len(SEEDS)} seeds to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
