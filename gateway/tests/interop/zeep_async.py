"""The zeep SOAP client driving the asynchronous mailbox operations through the
gateway, with the WSDL the gateway serves at /soap/a1?wsdl:

  client   SendRequest (X-Road header names the pull service) -> MessageId
  provider GetRequest -> the stored envelope (base64), SendResponse
  client   GetResponse -> the provider's envelope, Ack

usage: zeep_async.py WSDL_URL CA CLIENT_CERT CLIENT_KEY PROVIDER_CERT PROVIDER_KEY -> one JSON line
"""
import base64
import json
import sys

from lxml import etree
from zeep import Client
from zeep.transports import Transport

from xroad import identifier, mtls_session, text

TEST = "urn:test:notices"


def system(tag, code, subsystem):
    return identifier(tag, "SUBSYSTEM", [("xRoadInstance", "KZ"), ("memberClass", "GOV"), ("memberCode", code), ("subsystemCode", subsystem)])


def headers(code, subsystem, message_id, service=None):
    out = [system("client", code, subsystem)]
    if service:
        parts = [("xRoadInstance", "KZ"), ("memberClass", "GOV"), ("memberCode", "000000000001"),
                 ("subsystemCode", "population-register"), ("serviceCode", service), ("serviceVersion", "v1")]
        out.append(identifier("service", "SERVICE", parts))
    return out + [text("id", message_id), text("protocolVersion", "4.0")]


def element(name, value):
    el = etree.Element("{%s}%s" % (TEST, name), nsmap={"n": TEST})
    el.text = value
    return el


def client_for(wsdl, ca, cert, key):
    return Client(wsdl, transport=Transport(session=mtls_session(ca, cert, key), timeout=20))


def main():
    wsdl, ca, ccert, ckey, pcert, pkey = sys.argv[1:7]
    consumer = client_for(wsdl, ca, ccert, ckey)
    provider = client_for(wsdl, ca, pcert, pkey)
    portal = ("000000000003", "egov-portal")
    register = ("000000000001", "population-register")
    out = {}

    sent = consumer.service.SendRequest(_value_1=[element("Notice", "address changed")],
                                        _soapheaders=headers(*portal, "zeep-async-1", service="notices"))
    out["sent"] = {"id": sent.MessageId, "duplicate": sent.Duplicate}
    again = consumer.service.SendRequest(_value_1=[element("Notice", "address changed")],
                                         _soapheaders=headers(*portal, "zeep-async-1", service="notices"))
    out["again"] = {"id": again.MessageId, "duplicate": again.Duplicate}

    taken = provider.service.GetRequest(Wait=5, _soapheaders=headers(*register, "zeep-take-1"))
    m = taken.Message if hasattr(taken, "Message") else taken
    out["request"] = {"id": m.MessageId, "client": m.Client, "service": m.Service,
                      "client_message_id": m.ClientMessageId, "attempt": m.Attempt,
                      "content_type": m.ContentType, "content": m.Content.decode()}

    provider.service.SendResponse(MessageId=m.MessageId, _value_1=[element("Answer", "registered")],
                                  _soapheaders=headers(*register, "zeep-reply-1"))
    answer = consumer.service.GetResponse(Wait=5, _soapheaders=headers(*portal, "zeep-take-2"))
    a = answer.Message if hasattr(answer, "Message") else answer
    out["response"] = {"id": a.MessageId, "status": a.Status, "content": a.Content.decode()}
    acked = consumer.service.Ack(MessageId=a.MessageId, _soapheaders=headers(*portal, "zeep-ack-1"))
    out["acked"] = acked.MessageId if hasattr(acked, "MessageId") else acked
    empty = consumer.service.GetResponse(Wait=0, _soapheaders=headers(*portal, "zeep-take-3"))
    out["after_ack"] = None if empty is None or getattr(empty, "Message", None) is None else "message"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
