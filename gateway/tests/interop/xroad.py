"""Shared by the zeep interop scripts: X-Road 4.0 header elements and an mTLS
session that trusts only the gateway's CA."""
from lxml import etree
from requests import Session

XRD = "http://x-road.eu/xsd/xroad.xsd"
ID = "http://x-road.eu/xsd/identifiers"


def identifier(tag, object_type, parts):
    el = etree.Element("{%s}%s" % (XRD, tag), nsmap={"xrd": XRD, "id": ID})
    el.set("{%s}objectType" % ID, object_type)
    for name, value in parts:
        etree.SubElement(el, "{%s}%s" % (ID, name)).text = value
    return el


def text(tag, value):
    el = etree.Element("{%s}%s" % (XRD, tag), nsmap={"xrd": XRD})
    el.text = value
    return el


def mtls_session(ca, cert, key):
    session = Session()
    # REQUESTS_CA_BUNDLE and friends would override session.verify (a known requests
    # quirk); this client trusts only the gateway's CA, and no proxy.
    session.trust_env = False
    session.verify = ca
    session.cert = (cert, key)
    return session
