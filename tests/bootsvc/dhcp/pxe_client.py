#!/usr/bin/env python3
"""A PXE ROM's side of DHCP, enough to test proxyDHCP: broadcast a DISCOVER with the PXE
vendor class (60), architecture (93) and UUID (97), collect every offer for a while, take the
address offer (from the site's server), REQUEST it, configure it, then ask the proxy's boot
server on port 4011 as the PXE spec says. Prints one JSON object with what was received.

Usage: pxe_client.py --iface eth0 --mac 52:54:00:..:..:.. --arch 0 [--user-class iPXE]
                     [--collect-s 2] [--no-request]
Run inside the client's network namespace, as root (port 68, address configuration).
"""
import argparse
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

COOKIE = b"\x63\x82\x53\x63"


def build(mac, xid, msg_type, options, ciaddr="0.0.0.0"):
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
                       socket.inet_aton(ciaddr), b"\0" * 4, b"\0" * 4, b"\0" * 4,
                       mac + b"\0" * 10, b"\0" * 64, b"\0" * 128)
    opts = bytes([53, 1, msg_type])
    for code, value in options:
        opts += bytes([code, len(value)]) + value
    return head + COOKIE + opts + b"\xff"


def parse(data):
    if len(data) < 240 or data[236:240] != COOKIE:
        return None
    op, _, _, _, xid = struct.unpack("!BBBBI", data[:8])
    out = {"op": op, "xid": xid,
           "yiaddr": socket.inet_ntoa(data[16:20]), "siaddr": socket.inet_ntoa(data[20:24]),
           "file": data[108:236].split(b"\0", 1)[0].decode(errors="replace"), "options": {}}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        code, size = data[i], data[i + 1]
        out["options"][code] = out["options"].get(code, b"") + data[i + 2:i + 2 + size]
        i += 2 + size
    opts = out["options"]
    out["type"] = opts.get(53, b"\0")[0]
    out["server_id"] = socket.inet_ntoa(opts[54]) if len(opts.get(54, b"")) == 4 else None
    out["vendor_class"] = opts.get(60, b"").decode(errors="replace")
    out["vendor_options"] = opts.get(43, b"").hex()
    out["bootfile_option"] = opts.get(67, b"").decode(errors="replace")
    out["uuid"] = opts.get(97, b"").hex()
    del out["options"]
    return out


def receive(sock, xid, seconds):
    got = []
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return got
        r, _, _ = select.select([sock], [], [], left)
        if not r:
            continue
        data, addr = sock.recvfrom(4096)
        p = parse(data)
        if p and p["op"] == 2 and p["xid"] == xid:
            p["from"] = addr[0]
            got.append(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", default="eth0")
    ap.add_argument("--mac", required=True)
    ap.add_argument("--arch", type=int, default=0)
    ap.add_argument("--user-class", default="")
    ap.add_argument("--vendor-class", default="")
    ap.add_argument("--collect-s", type=float, default=2.0)
    ap.add_argument("--no-request", action="store_true")
    a = ap.parse_args()
    mac = bytes.fromhex(a.mac.replace(":", ""))
    vendor = a.vendor_class or "PXEClient:Arch:%05d:UNDI:002001" % a.arch
    uuid = b"\0" + os.urandom(16)
    pxe = [(60, vendor.encode()), (93, struct.pack("!H", a.arch)), (94, b"\x01\x02\x01"), (97, uuid),
           (55, bytes([1, 3, 6, 43, 60, 66, 67, 97]))]
    if a.user_class:
        pxe.append((77, a.user_class.encode()))

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, a.iface.encode())
    s.bind(("0.0.0.0", 68))
    xid = random.getrandbits(32)
    result = {"uuid_sent": uuid.hex()}
    s.sendto(build(mac, xid, 1, pxe), ("255.255.255.255", 67))
    offers = receive(s, xid, a.collect_s)
    result["offers"] = offers
    address_offer = next((o for o in offers if o["yiaddr"] != "0.0.0.0"), None)
    proxy_offer = next((o for o in offers if o["yiaddr"] == "0.0.0.0" and o["vendor_class"] == "PXEClient"), None)
    if a.no_request or not address_offer:
        print(json.dumps(result))
        return 0
    s.sendto(build(mac, xid, 3, pxe + [(50, socket.inet_aton(address_offer["yiaddr"])),
                                       (54, socket.inet_aton(address_offer["server_id"]))]),
             ("255.255.255.255", 67))
    acks = [p for p in receive(s, xid, 1.5) if p["type"] == 5 and p["server_id"] == address_offer["server_id"]]
    result["ack"] = acks[0] if acks else None
    if not acks or not proxy_offer:
        print(json.dumps(result))
        return 0
    ip = acks[0]["yiaddr"]
    subprocess.run(["ip", "addr", "add", ip + "/16", "dev", a.iface], check=True)
    # The boot server request: unicast to the proxy on 4011, from our new address.
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    b.bind((ip, 68))
    s.close()
    b.sendto(build(mac, xid, 3, pxe + [(43, bytes([71, 4, 0, 0, 0, 0, 255]))], ciaddr=ip),
             (proxy_offer["server_id"], 4011))
    boot = receive(b, xid, 1.5)
    result["boot_ack"] = boot[0] if boot else None
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
