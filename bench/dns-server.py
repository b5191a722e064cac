#!/usr/bin/python3
"""A small authoritative DNS server on loopback for the benchmarks.

    bench/dns-server.py ADDR PORT RECORDS

RECORDS has one record per line: `name TYPE value` (TXT values are the
rest of the line, split into 255-byte strings). Every other name gets
NXDOMAIN. Uses Debian's python3-dnspython; UDP only, one thread: the
benchmarks cache or ask little, and the same server answers Merpati and
Postfix's milters alike.
"""
import socket
import sys

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

# DNS_LOG=1 prints every question to stderr (to see what a server asks).
LOG = bool(__import__("os").environ.get("DNS_LOG"))


def load(path):
    records = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, rtype, value = line.split(None, 2)
            name = name.lower().rstrip(".") + "."
            if rtype.upper() == "TXT":
                raw = value.encode()
                chunks = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
                value = " ".join('"%s"' % c.decode().replace('"', '\\"') for c in chunks)
            rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), value)
            records.setdefault((name, rdata.rdtype), []).append(rdata)
    return records


def main():
    addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    records = load(path)
    names = {name for name, _ in records}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((addr, port))
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = dns.message.from_wire(data)
        except Exception:
            continue
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for q in query.question:
            name = q.name.to_text().lower()
            if LOG:
                print(name, dns.rdatatype.to_text(q.rdtype), file=sys.stderr, flush=True)
            found = records.get((name, q.rdtype))
            if found:
                rrset = dns.rrset.RRset(q.name, dns.rdataclass.IN, q.rdtype)
                for rdata in found:
                    rrset.add(rdata, ttl=300)
                response.answer.append(rrset)
            else:
                if name not in names:
                    response.set_rcode(dns.rcode.NXDOMAIN)
                # As a real zone answers: the SOA, so that resolvers cache
                # the negative answer (RFC 2308) for its minimum TTL.
                zone = dns.name.from_text(name.split(".")[-2] + ".")
                soa = dns.rrset.from_text(zone, 300, "IN", "SOA",
                                          "ns.%s hostmaster.%s 1 3600 600 86400 300" % (zone, zone))
                response.authority.append(soa)
        sock.sendto(response.to_wire(), peer)


if __name__ == "__main__":
    main()
