//! A raw IMAP client for the tests: lines over a loopback socket, one
//! tagged command at a time (`t1`, `t2`, ...), every response back as
//! text, as a client's wire log would show it.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Imap {
    pub reader: BufReader<TcpStream>,
    writer: TcpStream,
    pub next_tag: u32,
}

impl Imap {
    /// Connects; returns the client and the server's greeting.
    pub fn connect(port: u16) -> (Imap, String) {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut imap = Imap {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            next_tag: 1,
        };
        let greeting = imap.line();
        (imap, greeting)
    }

    /// Connects and logs in (LOGIN is `t1`).
    #[track_caller]
    pub fn login_as(port: u16, user: &str, password: &str) -> Imap {
        let (mut imap, greeting) = Imap::connect(port);
        assert!(greeting.starts_with("* OK"), "{greeting}");
        imap.ok(&format!("LOGIN {user} \"{password}\""));
        imap
    }

    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap_or(0);
        line
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write");
    }

    /// Reads until a line starts with `prefix`; returns everything read.
    pub fn until(&mut self, prefix: &str) -> String {
        let mut all = String::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                panic!("connection closed waiting for {prefix:?}; got:\n{all}");
            }
            all.push_str(&line);
            if line.starts_with(prefix) {
                return all;
            }
        }
    }

    /// The tag the next command gets.
    pub fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends a tagged command; returns all responses through the tagged one.
    pub fn cmd(&mut self, text: &str) -> String {
        let tag = self.tag();
        self.send(format!("{tag} {text}\r\n").as_bytes());
        self.until(&format!("{tag} "))
    }

    /// [`Imap::cmd`] that must end in a tagged OK.
    #[track_caller]
    pub fn ok(&mut self, text: &str) -> String {
        let tag = format!("t{} OK", self.next_tag);
        let reply = self.cmd(text);
        assert!(reply.contains(&tag), "{text}: {reply}");
        reply
    }
}
