//! The WSDLs the ШЭП faces serve (`/bip-sync/?wsdl`, `/bip-async/?wsdl`), written
//! from the structure of public ШЭП messages and client stubs (docs/shep.md#sources):
//! document/literal SOAP 1.1, types in `…/v10/Types` with unqualified children,
//! port type `ISyncChannel` / `IAsyncChannel` in `…/v10/Interfaces`, `data` as
//! `xs:anyType` (a message types it with `xsi:type`).

use super::{ASYNC_INTERFACES_NS, ASYNC_TYPES_NS, SYNC_INTERFACES_NS, SYNC_TYPES_NS};
use crate::soap::escape;

/// Types both channels share: sender, property, status, error.
const COMMON_TYPES: &str = r#"
      <xs:complexType name="SenderInfo"><xs:sequence>
        <xs:element name="senderId" type="xs:string"/>
        <xs:element name="password" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="Property"><xs:sequence>
        <xs:element name="key" type="xs:string"/>
        <xs:element name="value" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="StatusInfo"><xs:sequence>
        <xs:element name="code" type="xs:string"/>
        <xs:element name="message" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="ErrorInfo"><xs:sequence>
        <xs:element name="errorCode" type="xs:string"/>
        <xs:element name="errorMessage" type="xs:string" minOccurs="0"/>
        <xs:element name="errorDate" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="sessionId" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="Data"><xs:sequence>
        <xs:element name="data" type="xs:anyType" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:element name="SendMessageFault" type="tns:ErrorInfo"/>"#;

fn wsdl(
    types_ns: &str,
    interfaces_ns: &str,
    port_type: &str,
    schema: &str,
    operations: &[&str],
    endpoint: &str,
) -> String {
    let messages: String = operations
        .iter()
        .map(|op| {
            format!(
                r#"
  <wsdl:message name="{op}"><wsdl:part name="parameters" element="types:{op}"/></wsdl:message>
  <wsdl:message name="{op}Response"><wsdl:part name="parameters" element="types:{op}Response"/></wsdl:message>"#
            )
        })
        .collect();
    let port_ops: String = operations
        .iter()
        .map(|op| {
            format!(
                r#"
    <wsdl:operation name="{op}">
      <wsdl:input message="tns:{op}"/><wsdl:output message="tns:{op}Response"/><wsdl:fault name="{op}Fault" message="tns:SendMessageFault"/>
    </wsdl:operation>"#
            )
        })
        .collect();
    let binding_ops: String = operations
        .iter()
        .map(|op| {
            format!(
                r#"
    <wsdl:operation name="{op}"><soap:operation soapAction="" style="document"/>
      <wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output><soap:body use="literal"/></wsdl:output>
      <wsdl:fault name="{op}Fault"><soap:fault name="{op}Fault" use="literal"/></wsdl:fault>
    </wsdl:operation>"#
            )
        })
        .collect();
    let endpoint = escape(endpoint).replace('"', "&quot;");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="{interfaces_ns}" xmlns:types="{types_ns}"
    name="{port_type}" targetNamespace="{interfaces_ns}">
  <wsdl:types>
    <xs:schema targetNamespace="{types_ns}" xmlns:tns="{types_ns}" elementFormDefault="unqualified">{COMMON_TYPES}{schema}
    </xs:schema>
  </wsdl:types>{messages}
  <wsdl:message name="SendMessageFault"><wsdl:part name="fault" element="types:SendMessageFault"/></wsdl:message>
  <wsdl:portType name="{port_type}">{port_ops}
  </wsdl:portType>
  <wsdl:binding name="{port_type}HttpBinding" type="tns:{port_type}">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding_ops}
  </wsdl:binding>
  <wsdl:service name="{port_type}HttpService">
    <wsdl:port name="{port_type}HttpPort" binding="tns:{port_type}HttpBinding">
      <soap:address location="{endpoint}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"#
    )
}

const SYNC_SCHEMA: &str = r#"
      <xs:complexType name="SyncMessageInfo"><xs:sequence>
        <xs:element name="messageId" type="xs:string"/>
        <xs:element name="correlationId" type="xs:string" minOccurs="0"/>
        <xs:element name="serviceId" type="xs:string"/>
        <xs:element name="messageDate" type="xs:dateTime"/>
        <xs:element name="routeId" type="xs:string" minOccurs="0"/>
        <xs:element name="sender" type="tns:SenderInfo"/>
        <xs:element name="properties" type="tns:Property" minOccurs="0" maxOccurs="unbounded"/>
        <xs:element name="sessionId" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="SyncMessageInfoResponse"><xs:sequence>
        <xs:element name="messageId" type="xs:string"/>
        <xs:element name="correlationId" type="xs:string" minOccurs="0"/>
        <xs:element name="responseDate" type="xs:dateTime"/>
        <xs:element name="status" type="tns:StatusInfo"/>
        <xs:element name="sessionId" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="SyncSendMessageRequest"><xs:sequence>
        <xs:element name="requestInfo" type="tns:SyncMessageInfo"/>
        <xs:element name="requestData" type="tns:Data"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="SyncSendMessageResponse"><xs:sequence>
        <xs:element name="responseInfo" type="tns:SyncMessageInfoResponse"/>
        <xs:element name="responseData" type="tns:Data"/>
      </xs:sequence></xs:complexType>
      <xs:element name="SendMessage"><xs:complexType><xs:sequence>
        <xs:element name="request" type="tns:SyncSendMessageRequest"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="SendMessageResponse"><xs:complexType><xs:sequence>
        <xs:element name="response" type="tns:SyncSendMessageResponse"/>
      </xs:sequence></xs:complexType></xs:element>"#;

const ASYNC_SCHEMA: &str = r#"
      <xs:complexType name="AsyncMessageInfo"><xs:sequence>
        <xs:element name="messageId" type="xs:string"/>
        <xs:element name="correlationId" type="xs:string" minOccurs="0"/>
        <xs:element name="serviceId" type="xs:string"/>
        <xs:element name="messageType" type="xs:string" minOccurs="0"/>
        <xs:element name="messageDate" type="xs:dateTime"/>
        <xs:element name="sender" type="tns:SenderInfo"/>
        <xs:element name="properties" type="tns:Property" minOccurs="0" maxOccurs="unbounded"/>
        <xs:element name="sessionId" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="AsyncSendMessageRequest"><xs:sequence>
        <xs:element name="messageInfo" type="tns:AsyncMessageInfo"/>
        <xs:element name="messageData" type="tns:Data"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="AsyncSendMessageResponse"><xs:sequence>
        <xs:element name="messageId" type="xs:string"/>
        <xs:element name="correlationId" type="xs:string" minOccurs="0"/>
        <xs:element name="status" type="tns:StatusInfo" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="AsyncGetMessageStatusRequest"><xs:sequence>
        <xs:element name="messageId" type="xs:string"/>
        <xs:element name="sender" type="tns:SenderInfo" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:element name="sendMessage"><xs:complexType><xs:sequence>
        <xs:element name="request" type="tns:AsyncSendMessageRequest"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="sendMessageResponse"><xs:complexType><xs:sequence>
        <xs:element name="response" type="tns:AsyncSendMessageResponse"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="getMessageStatus"><xs:complexType><xs:sequence>
        <xs:element name="request" type="tns:AsyncGetMessageStatusRequest"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="getMessageStatusResponse"><xs:complexType><xs:sequence>
        <xs:element name="response" type="tns:AsyncSendMessageResponse"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:complexType name="DeliveryStatusInfo"><xs:sequence>
        <xs:element name="receiveStatus" type="xs:string"/>
        <xs:element name="statusDate" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="resendMessage" type="xs:string" minOccurs="0"/>
        <xs:element name="error" type="tns:ErrorInfo" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="DeliveryNotification"><xs:sequence>
        <xs:element name="messageId" type="xs:string"/>
        <xs:element name="serviceId" type="xs:string"/>
        <xs:element name="notificationDate" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="deliveryStatus" type="tns:DeliveryStatusInfo"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="AsyncSendDeliveryNotificationRequest"><xs:sequence>
        <xs:element name="notification" type="tns:DeliveryNotification"/>
        <xs:element name="requestDate" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="sender" type="tns:SenderInfo"/>
      </xs:sequence></xs:complexType>
      <xs:complexType name="AsyncSendDeliveryNotificationResponse"><xs:sequence>
        <xs:element name="notificationId" type="xs:string" minOccurs="0"/>
        <xs:element name="responseDate" type="xs:dateTime" minOccurs="0"/>
        <xs:element name="sessionId" type="xs:string" minOccurs="0"/>
      </xs:sequence></xs:complexType>
      <xs:element name="sendDeliveryNotification"><xs:complexType><xs:sequence>
        <xs:element name="request" type="tns:AsyncSendDeliveryNotificationRequest"/>
      </xs:sequence></xs:complexType></xs:element>
      <xs:element name="sendDeliveryNotificationResponse"><xs:complexType><xs:sequence>
        <xs:element name="response" type="tns:AsyncSendDeliveryNotificationResponse"/>
      </xs:sequence></xs:complexType></xs:element>"#;

/// The SyncChannel WSDL with its address at `endpoint`.
pub fn sync_wsdl(endpoint: &str) -> String {
    wsdl(SYNC_TYPES_NS, SYNC_INTERFACES_NS, "ISyncChannel", SYNC_SCHEMA, &["SendMessage"], endpoint)
}

/// The AsyncChannel WSDL with its address at `endpoint`.
pub fn async_wsdl(endpoint: &str) -> String {
    wsdl(
        ASYNC_TYPES_NS,
        ASYNC_INTERFACES_NS,
        "IAsyncChannel",
        ASYNC_SCHEMA,
        &["sendMessage", "getMessageStatus", "sendDeliveryNotification"],
        endpoint,
    )
}
