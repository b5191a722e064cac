//! Integration tests: the real server over loopback sockets.
