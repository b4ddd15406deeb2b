//! ШЭП (Kazakhstan's e-government gateway) envelopes: SyncChannel `SendMessage` and
//! AsyncChannel `sendMessage` (docs/shep.md). Pure: bytes in, a borrowed view out;
//! the answers and faults the gateway writes; the WSDLs it serves.
//!
//! Every message first passes the hardened SOAP reader ([`crate::soap::read_envelope`]:
//! no DOCTYPE, no entity but the predefined ones, limits on depth, names, text and
//! element counts); this module then reads only the Body, by local name, because
//! public ШЭП clients disagree on prefixes and on whether `request` is qualified
//! (`xmlns=""` or not). Fields are read at their one place in the structure:
//! a second `serviceId`, or one nested where ШЭП does not put it, is refused rather
//! than guessed at (a provider might read the other one).

mod answer;
mod message;
mod reader;
mod writer;
pub mod wsdl;

#[cfg(test)]
mod tests;

pub use answer::{
    declarations, namespaces_in_scope, read_sync_answer, response_content, with_default_namespace, AnswerFault,
    SyncAnswer,
};
pub use reader::{read, Channel, DeliveryNotice, Message, Password, Sender, ShepError, MAX_FIELD_LEN, MAX_PROPERTIES};
pub use writer::{
    async_ack, build_sync_request, envelope, fault, sync_response, ResponseInfo, SUCCESS_CODE, SUCCESS_MESSAGE,
};

pub const SYNC_TYPES_NS: &str = "http://bip.bee.kz/SyncChannel/v10/Types";
pub const SYNC_INTERFACES_NS: &str = "http://bip.bee.kz/SyncChannel/v10/Interfaces";
pub const ASYNC_TYPES_NS: &str = "http://bip.bee.kz/AsyncChannel/v10/Types";
pub const ASYNC_INTERFACES_NS: &str = "http://bip.bee.kz/AsyncChannel/v10/Interfaces";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Delivery states of an AsyncChannel message, as ШЭП reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    OnDelivery,
    Delivered,
    NotDelivered,
    DeliveryStopped,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnDelivery => "ON_DELIVERY",
            Self::Delivered => "DELIVERED",
            Self::NotDelivered => "NOT_DELIVERED",
            Self::DeliveryStopped => "DELIVERY_STOPPED",
        }
    }
}
