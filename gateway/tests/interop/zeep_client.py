"""The zeep SOAP client against the gateway: load the WSDL over mTLS, call GetDebt
with the X-Road 4.0 header over the SOAP 1.1 and the SOAP 1.2 port.

usage: zeep_client.py WSDL_URL CA CERT KEY -> one JSON line with both answers
"""
import json
import sys

from lxml import etree
from requests import Session
from zeep import Client
from zeep.transports import Transport

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


def main():
    wsdl, ca, cert, key = sys.argv[1:5]
    session = Session()
    # REQUESTS_CA_BUNDLE and friends would override session.verify (a known requests
    # quirk); this client trusts only the gateway's CA, and no proxy.
    session.trust_env = False
    session.verify = ca
    session.cert = (cert, key)
    client = Client(wsdl, transport=Transport(session=session, timeout=10))
    member = [("xRoadInstance", "KZ"), ("memberClass", "GOV")]
    out = {}
    for port, version in (("TaxPort", "soap11"), ("TaxPort12", "soap12")):
        headers = [
            identifier("client", "SUBSYSTEM", member + [("memberCode", "000000000003"), ("subsystemCode", "egov-portal")]),
            identifier(
                "service",
                "SERVICE",
                member
                + [
                    ("memberCode", "000000000002"),
                    ("subsystemCode", "legacy-tax"),
                    ("serviceCode", "debt"),
                    ("serviceVersion", "v1"),
                ],
            ),
            text("id", "zeep-" + version),
            text("protocolVersion", "4.0"),
        ]
        service = client.bind("TaxService", port)
        answer = service.GetDebt(iin="900101300123", _soapheaders=headers)
        out[version] = {"iin": answer.iin, "amount": str(answer.amount._value_1), "currency": answer.amount.currency}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
