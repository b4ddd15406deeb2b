#!/usr/bin/env python3
"""X-Road-Request-Hash, computed independently of the gateway from X-Road's formula.

X-Road (RestRequest.toByteArray, RestMessage.serializeHeaders, and the digest in
ServerRestMessageProcessor / ClientRestMessageProcessor.checkConsistency;
doc/Protocols/pr-rest §4.3):

    head = VERB CRLF rawPath[?rawQuery] CRLF
           then Name:Value CRLF for each client header in order, minus the skipped set
           then x-road-request-id:ID CRLF
           then, when the client sent no X-Road-Id, x-road-id:ID CRLF
    hash = b64(SHA-512(SHA-512(head) || SHA-512(body)))   (a body)
           b64(SHA-512(head))                              (no body)

This script sends X-Road's own REST examples (GET, PUT, POST, DELETE of pr-rest
§6.2-6.5) and two more calls to the gateway's /r1 over mTLS with exactly the header
lines it lists (http.client, no implicit headers), reads X-Road-Request-Id, X-Road-Id
and X-Road-Request-Hash from the answer, and checks the hash. With
XROAD_JAVA_CLASSPATH set (the test compiles java/ when a JDK is there), each hash is
also computed by X-Road's own RestRequest.java and compared. Header
names are hashed as the gateway receives them: lower case (see docs/protocol.md).

usage: request_hash.py HOST PORT CA CERT KEY SERVICE_PATH CLIENT_ID
"""

import base64
import hashlib
import http.client
import json
import os
import shlex
import ssl
import sys

SKIPPED = {
    "transfer-encoding", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "upgrade", "connection", "user-agent", "host", "content-length", "server",
    "expect", "x-road-request-id", "x-road-request-hash",
}


def head(verb, target, headers, request_id, message_id):
    out = verb.encode() + b"\r\n" + target.encode() + b"\r\n"
    names = set()
    for name, value in headers:
        names.add(name.lower())
        if name.lower() in SKIPPED:
            continue
        out += name.lower().encode() + b":" + value.encode() + b"\r\n"
    out += b"x-road-request-id:" + request_id.encode() + b"\r\n"
    if "x-road-id" not in names:
        out += b"x-road-id:" + message_id.encode() + b"\r\n"
    return out


def x_road_hash(head_bytes, body):
    head_digest = hashlib.sha512(head_bytes).digest()
    if not body:
        return base64.b64encode(head_digest).decode()
    return base64.b64encode(hashlib.sha512(head_digest + hashlib.sha512(body).digest()).digest()).decode()


def x_road_java(classpath, verb, target, headers, request_id, message_id, body):
    """The same hash by X-Road's own RestRequest.java (java/, compiled by the test)."""
    import subprocess
    import tempfile
    path, _, query = target.partition("?")
    args = ["java", "-cp", classpath, "ee.ria.xroad.common.message.XRoadRestHash", verb, path,
            query if "?" in target else "-", request_id, message_id]
    with tempfile.NamedTemporaryFile() as f:
        if body:
            f.write(body)
            f.flush()
        args.append(f.name if body else "-")
        for name, value in headers:
            args += [name.lower(), value]
        return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def call(ctx, host, port, verb, target, headers, body):
    conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)
    conn.putrequest(verb, target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        conn.putheader(name, value)
    conn.endheaders(body)
    response = conn.getresponse()
    answer = response.read()
    got = {k.lower(): v for k, v in response.getheaders()}
    conn.close()
    return response.status, got, answer


def examples(path, service, client, port):
    """X-Road's own REST calls (pr-rest §6.2-6.5, vendored verbatim in
    protocols/pr-rest-examples.txt), rewritten to the test config: {serviceId} and
    {client} become the test's, and the provider path goes to the test provider's
    /echo (no body) or /sink (reads the body, so the hash covers it)."""
    cases = []
    for line in open(path, encoding="utf-8"):
        args = shlex.split(line)
        verb = args[args.index("-X") + 1]
        url = next(a for a in args if a.startswith("https://"))
        example_path = url.split("/r1/{serviceId}", 1)[1]
        headers = [("Host", f"localhost:{port}"), ("User-Agent", "curl/8.14.1")]
        body = None
        for i, a in enumerate(args):
            if a == "-H":
                name, value = args[i + 1].split(":", 1)
                headers.append((name, value.strip().replace("{client}", client)))
            if a == "-d":
                body = args[i + 1].encode()
        target = f"/r1/{service}/sink" if body else f"/r1/{service}/echo{example_path}"
        if body:
            headers.append(("Content-Length", str(len(body))))
        cases.append((verb, target, headers, body))
    return cases


def main():
    host, port, ca, cert, key, service, client = sys.argv[1:8]
    ctx = ssl.create_default_context(cafile=ca)
    ctx.load_cert_chain(cert, key)
    failures = []
    here = os.path.dirname(os.path.abspath(__file__))
    cases = examples(os.path.join(here, "protocols", "pr-rest-examples.txt"), service, client, port)
    if [c[0] for c in cases] != ["GET", "PUT", "POST", "DELETE"]:
        sys.exit(f"the vendored examples changed: {[c[0] for c in cases]}")
    body = json.dumps({"id": 0, "name": "doggie", "status": "available"}).encode()
    cases += [
        # A GET with a query and an escape in it: the raw query is hashed as sent.
        ("GET", f"/r1/{service}/echo/pets/1124?quu=1&x=%20y", [
            ("Host", f"localhost:{port}"),
            ("Accept", "application/json"),
            ("X-Road-Client", client),
        ], None),
        # A POST with the client's own X-Road-Id (hashed where it stands, not added again).
        ("POST", f"/r1/{service}/sink", [
            ("Host", f"localhost:{port}"),
            ("X-Road-Id", "conformance-post-1"),
            ("Content-Type", "application/json; charset=utf-8"),
            ("X-Road-Client", client),
            ("Content-Length", str(len(body))),
        ], body),
    ]
    for verb, target, headers, body in cases:
        status, got, answer = call(ctx, host, port, verb, target, headers, body)
        if status != 200:
            failures.append(f"{verb}: status {status}: {answer[:300]!r}")
            continue
        request_id, message_id = got.get("x-road-request-id"), got.get("x-road-id")
        if not request_id or not message_id:
            failures.append(f"{verb}: no X-Road-Request-Id or X-Road-Id in {got}")
            continue
        want = x_road_hash(head(verb, target, headers, request_id, message_id), body)
        if got.get("x-road-request-hash") != want:
            failures.append(f"{verb}: X-Road-Request-Hash {got.get('x-road-request-hash')} != {want}")
        else:
            print(f"{verb} {target}: X-Road-Request-Hash {want} matches X-Road's formula")
        java = os.environ.get("XROAD_JAVA_CLASSPATH")
        if java:
            by_x_road = x_road_java(java, verb, target, headers, request_id, message_id, body)
            if by_x_road != got.get("x-road-request-hash"):
                failures.append(f"{verb}: X-Road's RestRequest computes {by_x_road}")
            else:
                print(f"{verb} {target}: X-Road's own RestRequest.java computes the same hash")
        if body:
            # /sink reads the whole body (so the hash covers it) and answers its length.
            if answer.strip() != str(len(body)).encode():
                failures.append(f"{verb}: the provider read {answer[:50]!r}, not {len(body)} bytes")
            continue
        seen_headers = {k.lower(): v for k, v in json.loads(answer)["headers"].items()}
        if seen_headers.get("x-road-request-id") != request_id:
            failures.append(f"{verb}: the provider got X-Road-Request-Id {seen_headers.get('x-road-request-id')}")
        if "user-agent" in seen_headers:
            failures.append(f"{verb}: the provider got User-Agent")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
