//! Pure routing decisions for Qaqpa: identifiers, the route table, access lists and
//! upstream balancing. Nothing here touches sockets, disk or clocks, so every decision
//! can be tested exhaustively and benchmarked in isolation.
#![forbid(unsafe_code)]

pub mod health;
pub mod ids;
pub mod limit;
pub mod path;
pub mod retry;
pub mod table;

pub use ids::{IdError, ServiceId, SystemId};
pub use path::{split_rest_path, PathError, RestTarget};
pub use table::{AccessList, RouteTable, RouteTableBuilder, TableError};
