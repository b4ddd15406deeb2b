"""The zeep SOAP client as a legacy ШЭП system: loads the SyncChannel and
AsyncChannel WSDLs the gateway serves (/bip-sync/?wsdl, /bip-async/?wsdl) and
calls SendMessage and sendMessage from them, `data` typed with xsi:type as
real ШЭП clients do.

usage: zeep_shep.py BASE_URL CA CERT KEY SENDER PASSWORD IIN -> one JSON line
"""
import datetime
import json
import sys
import uuid

from lxml import etree
from zeep import Client, xsd
from zeep.exceptions import Fault
from zeep.transports import Transport

from xroad import mtls_session

DEMO = "urn:qaqpa:demo:shep"


def main():
    base, ca, cert, key, sender, password, iin = sys.argv[1:8]
    transport = Transport(session=mtls_session(ca, cert, key), timeout=20)
    sync = Client(base + "/bip-sync/?wsdl", transport=transport)
    person_request = xsd.ComplexType(
        [xsd.Element("iin", xsd.String())], qname=etree.QName(DEMO, "PersonRequest")
    )
    message_id = str(uuid.uuid4())
    now = datetime.datetime.now(datetime.timezone.utc)
    response = sync.service.SendMessage(request={
        "requestInfo": {
            "messageId": message_id,
            "serviceId": "PopulationRegister_Person",
            "messageDate": now,
            "sender": {"senderId": sender, "password": password},
            "properties": [{"key": "CONNECTOR_CLIENT", "value": "true"}],
            "sessionId": "{zeep-session}",
        },
        "requestData": {"data": xsd.AnyObject(person_request, person_request(iin=iin))},
    })
    info = response.responseInfo
    data = response.responseData.data
    fields = {el.tag: el.text for el in data} if isinstance(data, list) else {}

    asynchronous = Client(base + "/bip-async/?wsdl", transport=transport)
    async_id = str(uuid.uuid4())
    sent = asynchronous.service.sendMessage(request={
        "messageInfo": {
            "messageId": async_id,
            "serviceId": "PopulationRegister_AddressChange",
            "messageType": "REQUEST",
            "messageDate": now,
            "sender": {"senderId": sender, "password": password},
        },
        "messageData": {"data": xsd.AnyObject(person_request, person_request(iin=iin))},
    })
    # sendDeliveryNotification as the WSDL describes it. The portal does not provide
    # the service, so the gateway reads the notification and refuses it with a
    # ШЭП fault whose detail zeep parses.
    try:
        asynchronous.service.sendDeliveryNotification(request={
            "notification": {
                "messageId": async_id,
                "serviceId": "PopulationRegister_AddressChange",
                "notificationDate": now,
                "deliveryStatus": {
                    "receiveStatus": "MESSAGE_ACCEPTED",
                    "statusDate": now,
                    "resendMessage": "NOT_RESEND",
                },
            },
            "requestDate": now,
            "sender": {"senderId": sender, "password": password},
        })
        notified = {"fault": None}
    except Fault as fault:
        code = fault.detail.find(".//errorCode") if fault.detail is not None else None
        notified = {"fault": fault.message, "errorCode": code.text if code is not None else None}
    print(json.dumps({
        "sync": {
            "correlationId": info.correlationId,
            "status": info.status.code,
            "sessionId": info.sessionId,
            "expected_correlation": message_id,
            "fields": fields,
        },
        "async": {"messageId": sent.messageId, "status": sent.status.code, "expected": async_id},
        "notify": notified,
    }))


if __name__ == "__main__":
    main()
