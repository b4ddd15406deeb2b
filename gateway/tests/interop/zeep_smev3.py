"""The zeep SOAP client running the SMEV 3 cycle through the gateway, from the WSDL
and schemas the gateway serves at /smev3/?wsdl:

  portal   SendRequest (the address change)          -> MessageMetadata
  register GetRequest (selector: the kind), Ack, SendResponse (To = ReplyTo)
  portal   GetResponse -> the answer, Ack; GetResponse again -> nothing

Every call is signed as SMEV 3 clients sign it: CallerInformationSystemSignature,
one Reference to #SIGNED_BY_CALLER, exclusive c14n then the SMEV transform
(urn://smev-gov-ru/xmldsig/transform, written here from its public rules,
independently of the gateway's Rust one), SHA-256, ECDSA P-256.

usage: zeep_smev3.py WSDL_URL CA PORTAL_CERT PORTAL_KEY REGISTER_CERT REGISTER_KEY KIND -> one JSON line
"""
import base64
import datetime
import hashlib
import json
import sys
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from lxml import etree
from zeep import Client, Plugin
from zeep.transports import Transport

from xroad import mtls_session

DS = "http://www.w3.org/2000/09/xmldsig#"
T = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
SMEV_TRANSFORM = "urn://smev-gov-ru/xmldsig/transform"


def smev_transform(data):
    """The SMEV transform's eight rules over a canonical fragment."""
    root = etree.fromstring(data)
    out, counter = [], [0]

    def esc(s, attribute=False):
        s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return s.replace('"', "&quot;") if attribute else s

    def prefix(uri, stack, mine):
        for scope in stack + [mine]:
            for p, u in scope:
                if u == uri:
                    return p
        counter[0] += 1
        mine.append(("ns%d" % counter[0], uri))
        return "ns%d" % counter[0]

    def kept(text):
        return text is not None and any(c > " " for c in text)

    def walk(el, stack):
        name = etree.QName(el)
        if name.namespace is None:
            raise ValueError("unqualified element")
        mine = []
        p = prefix(name.namespace, stack, mine)
        attrs = [(etree.QName(k).namespace, etree.QName(k).localname, v) for k, v in el.attrib.items()]
        attrs.sort(key=lambda a: (0, a[0], a[1]) if a[0] else (1, "", a[1]))
        written = [(prefix(ns, stack, mine) if ns else None, local, v) for ns, local, v in attrs]
        out.append("<%s:%s" % (p, name.localname))
        out.extend(' xmlns:%s="%s"' % (mp, esc(mu, True)) for mp, mu in mine)
        out.extend(' %s%s="%s"' % (ap + ":" if ap else "", local, esc(v, True)) for ap, local, v in written)
        out.append(">")
        if kept(el.text):
            out.append(esc(el.text))
        for child in el:
            if isinstance(child.tag, str):
                walk(child, stack + [mine])
            if kept(child.tail):
                out.append(esc(child.tail))
        out.append("</%s:%s>" % (p, name.localname))

    walk(root, [])
    return "".join(out).encode()


class SmevSigner(Plugin):
    """Signs each outgoing call with the system's key (zeep egress hook)."""

    def __init__(self, cert, key):
        with open(cert, "rb") as f:
            self.cert = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
        with open(key, "rb") as f:
            self.key = serialization.load_pem_private_key(f.read(), password=None)

    def egress(self, envelope, http_headers, operation, binding_options):
        target = envelope.find(".//*[@Id='SIGNED_BY_CALLER']")
        canonical = etree.tostring(target, method="c14n", exclusive=True, with_comments=False)
        digest = base64.b64encode(hashlib.sha256(smev_transform(canonical)).digest()).decode()
        signed_info = etree.fromstring(
            '<ds:SignedInfo xmlns:ds="%s"><ds:CanonicalizationMethod Algorithm="%s"/>'
            '<ds:SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"/>'
            '<ds:Reference URI="#SIGNED_BY_CALLER"><ds:Transforms><ds:Transform Algorithm="%s"/>'
            '<ds:Transform Algorithm="%s"/></ds:Transforms>'
            '<ds:DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>'
            "<ds:DigestValue>%s</ds:DigestValue></ds:Reference></ds:SignedInfo>"
            % (DS, EXC_C14N, EXC_C14N, SMEV_TRANSFORM, digest)
        )
        der = self.key.sign(etree.tostring(signed_info, method="c14n", exclusive=True), ec.ECDSA(hashes.SHA256()))
        r, s = utils.decode_dss_signature(der)
        holder = envelope.find(".//{%s}CallerInformationSystemSignature" % T)
        for child in list(holder):
            holder.remove(child)
        signature = etree.SubElement(holder, "{%s}Signature" % DS, nsmap={"ds": DS})
        signature.append(signed_info)
        etree.SubElement(signature, "{%s}SignatureValue" % DS).text = base64.b64encode(
            r.to_bytes(32, "big") + s.to_bytes(32, "big")
        ).decode()
        data = etree.SubElement(etree.SubElement(signature, "{%s}KeyInfo" % DS), "{%s}X509Data" % DS)
        etree.SubElement(data, "{%s}X509Certificate" % DS).text = base64.b64encode(self.cert).decode()
        return envelope, http_headers


def placeholder():
    return {"_value_1": etree.Element("{%s}Signature" % DS, nsmap={"ds": DS})}


def client_for(wsdl, ca, cert, key):
    return Client(wsdl, transport=Transport(session=mtls_session(ca, cert, key), timeout=20), plugins=[SmevSigner(cert, key)])


def selector(kind=None):
    value = {"Id": "SIGNED_BY_CALLER", "Timestamp": datetime.datetime.now(datetime.timezone.utc)}
    if kind:
        value["NamespaceURI"] = kind
    return value


def ack(client, target):
    return client.service.Ack(
        AckTargetMessage={"_value_1": target, "Id": "SIGNED_BY_CALLER", "accepted": True},
        CallerInformationSystemSignature=placeholder(),
    )


def main():
    wsdl, ca, pcert, pkey, rcert, rkey, kind = sys.argv[1:8]
    portal = client_for(wsdl, ca, pcert, pkey)
    register = client_for(wsdl, ca, rcert, rkey)
    out = {}

    request_id = str(uuid.uuid1())
    content = etree.Element("{%s}AddressChangeRequest" % kind, nsmap={"ac": kind})
    etree.SubElement(content, "{%s}Iin" % kind).text = "900101300123"
    sent = portal.service.SendRequest(
        SenderProvidedRequestData={
            "Id": "SIGNED_BY_CALLER",
            "MessageID": request_id,
            "MessagePrimaryContent": {"_value_1": content},
        },
        CallerInformationSystemSignature=placeholder(),
    )
    out["sent"] = {"id": sent.MessageMetadata.MessageId, "status": sent.MessageMetadata.Status, "request_id": request_id}

    taken = register.service.GetRequest(MessageTypeSelector=selector(kind), CallerInformationSystemSignature=placeholder())
    # zeep unwraps an answer of one element (RequestMessage) into that element.
    request = getattr(taken, "RequestMessage", taken).Request
    data = request.SenderProvidedRequestData
    out["taken"] = {
        "id": data.MessageID,
        "content": etree.tostring(data.MessagePrimaryContent._value_1).decode(),
        "sender": request.MessageMetadata.Sender.Mnemonic,
    }
    ack(register, data.MessageID)

    response_id = str(uuid.uuid1())
    answer = etree.Element("{%s}AddressChangeResponse" % kind, nsmap={"ac": kind})
    etree.SubElement(answer, "{%s}Accepted" % kind).text = "true"
    answered = register.service.SendResponse(
        SenderProvidedResponseData={
            "Id": "SIGNED_BY_CALLER",
            "MessageID": response_id,
            "To": request.ReplyTo,
            "MessagePrimaryContent": {"_value_1": answer},
        },
        CallerInformationSystemSignature=placeholder(),
    )
    out["answered"] = answered.MessageMetadata.MessageType

    collected = portal.service.GetResponse(MessageTypeSelector=selector(), CallerInformationSystemSignature=placeholder())
    response = getattr(collected, "ResponseMessage", collected).Response
    out["collected"] = {
        "original": response.OriginalMessageId,
        "id": response.SenderProvidedResponseData.MessageID,
        "content": etree.tostring(response.SenderProvidedResponseData.MessagePrimaryContent._value_1).decode(),
    }
    ack(portal, response.SenderProvidedResponseData.MessageID)
    empty = portal.service.GetResponse(MessageTypeSelector=selector(), CallerInformationSystemSignature=placeholder())
    out["after_ack"] = None if empty is None or getattr(empty, "ResponseMessage", None) is None else "message"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
