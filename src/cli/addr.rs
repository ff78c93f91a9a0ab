//! spiped's socket-address grammar, as the command line uses it (`-s`, `-t`, `-b`). The type
//! lives in [`crate::config::addr`], shared with the configuration file; it is re-exported
//! here so that command-line code keeps its paths.

pub use crate::config::addr::{AddrError, MAX_UNIX_PATH_LEN, SockAddrSpec};
