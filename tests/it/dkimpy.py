"""dkimpy (Debian python3-dkim), the independent DKIM implementation the
tests hold Merpati against. Run with /usr/bin/python3.

  sign ALGO SELECTOR DOMAIN KEYFILE [expired]   message on stdin, signed on stdout
  verify RECORDS_FILE                           message on stdin; one line per signature
"""
import sys
import time

import dkim

HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]


def sign(algo, selector, domain, keyfile, expired=False):
    message = sys.stdin.buffer.read()
    key = open(keyfile, "rb").read().strip()
    if expired:
        # dkimpy cannot write x=; put it into the signed tag list, with
        # t= two days and x= one day in the past.
        now = int(time.time())
        dkim.time.time = lambda: now - 2 * 86400
        original = dkim.DKIM.gen_header

        def gen_header(self, fields, *args, **kwargs):
            fields.insert(len(fields) - 1, (b"x", str(now - 86400).encode()))
            return original(self, fields, *args, **kwargs)

        dkim.DKIM.gen_header = gen_header
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        key,
        signature_algorithm=algo.encode(),
        include_headers=HEADERS,
        canonicalize=(b"relaxed", b"relaxed"),
    )
    sys.stdout.buffer.write(signature + message)


def records(path):
    """Zone-file lines as `merpati dkim records` prints them."""
    out = {}
    for line in open(path):
        parts = line.split(None, 3)
        if len(parts) < 4 or parts[1] != "IN" or parts[2] != "TXT":
            continue
        strings = []
        rest = parts[3]
        while '"' in rest:
            start = rest.index('"')
            end = rest.index('"', start + 1)
            strings.append(rest[start + 1 : end])
            rest = rest[end + 1 :]
        out[parts[0].rstrip(".").lower()] = "".join(strings).encode()
    return out


def verify(path):
    table = records(path)

    def dnsfunc(name, timeout=5):
        return table.get(name.decode().rstrip(".").lower())

    message = sys.stdin.buffer.read()
    d = dkim.DKIM(message)
    count = sum(1 for name, _ in d.headers if name.lower() == b"dkim-signature")
    for index in range(count):
        ok = d.verify(idx=index, dnsfunc=dnsfunc)
        fields = d.signature_fields
        print(
            "signature %d: %s a=%s d=%s s=%s"
            % (
                index,
                "pass" if ok else "fail",
                fields.get(b"a", b"").decode(),
                fields.get(b"d", b"").decode(),
                fields.get(b"s", b"").decode(),
            )
        )
    if count == 0:
        print("no signatures")


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        sign(*sys.argv[2:6], expired=len(sys.argv) > 6 and sys.argv[6] == "expired")
    elif sys.argv[1] == "verify":
        verify(sys.argv[2])
    else:
        sys.exit("unknown command")
