"""Protobuf wire helpers the tests build expected bytes with."""


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int, as protobuf writes lengths."""
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
