"""Detached, unencoded JWS (RFC 7515 + RFC 7797) made and checked by jwcrypto, an
implementation independent of the gateway's, for the interop tests.

  jws_interop.py sign KEY.pem CERT.pem PAYLOAD_FILE CLAIMS_JSON  -> prints the token
  jws_interop.py verify TOKEN PAYLOAD_FILE                        -> prints the header, exit 0 if valid
"""
import base64
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from jwcrypto import jwk, jws
from jwcrypto.common import base64url_encode, json_encode


def alg_for(key):
    kty = key.export_public(as_dict=True)["kty"]
    return {"EC": "ES256", "RSA": "RS256", "OKP": "EdDSA"}[kty]


def sign(key_file, cert_file, payload_file, claims_json):
    key = jwk.JWK.from_pem(open(key_file, "rb").read())
    cert = x509.load_pem_x509_certificate(open(cert_file, "rb").read())
    der = cert.public_bytes(serialization.Encoding.DER)
    protected = {"alg": alg_for(key), "b64": False, "crit": ["b64"], "x5c": [base64.b64encode(der).decode()]}
    protected.update(json.loads(claims_json))
    token = jws.JWS(open(payload_file, "rb").read())
    token.add_signature(key, None, json_encode(protected))
    # jwcrypto will not serialize an unencoded payload holding '.' compactly; the
    # detached form needs only the protected header and the signature.
    print(base64url_encode(token.objects["protected"]) + ".." + base64url_encode(token.objects["signature"]))


def verify(token, payload_file):
    protected_b64 = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(protected_b64 + "=" * (-len(protected_b64) % 4)))
    leaf = x509.load_der_x509_certificate(base64.b64decode(header["x5c"][0]))
    key = jwk.JWK.from_pem(leaf.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    checked = jws.JWS()
    checked.deserialize(token)
    checked.verify(key, alg=header["alg"], detached_payload=open(payload_file, "rb").read())
    print(json.dumps(header, sort_keys=True))


if __name__ == "__main__":
    if sys.argv[1] == "sign":
        sign(*sys.argv[2:6])
    elif sys.argv[1] == "verify":
        verify(sys.argv[2], sys.argv[3])
    else:
        sys.exit("usage: jws_interop.py sign|verify ...")
