//! Our own Sieve engine (RFC 5228), no protocol code inside: `lexer`
//! (tokens with positions), `parser` (the grammar into a syntax tree),
//! `compile` (names, arguments and `require` checked into a program) and
//! `eval` (a program run against one message for one recipient).
//!
//! So far: the base language with `fileinto` (and `:create`), `copy`,
//! `envelope`, `subaddress`, `relational`, `body` (`:raw`, `:text`),
//! `reject`/`ereject` and the three comparators. Where it runs
//! (delivery), how scripts are stored and ManageSieve come next.

pub mod admin;
pub mod codec;
pub mod compile;
pub mod date;
pub mod editheader;
pub mod encoded;
pub mod eval;
pub mod global;
pub mod lexer;
pub mod matching;
pub mod notify;
pub mod parser;
pub mod scripts;
pub mod variables;

pub use compile::Cmd;
pub use eval::{Action, Input};

/// A script error, with where it is (line 0: at run time).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            return f.write_str(&self.message);
        }
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl Error {
    pub fn at(line: u32, column: u32, message: impl Into<String>) -> Error {
        Error {
            line,
            column,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Error {
        Error::at(0, 0, message)
    }
}

/// Scripts larger than this are refused before they are read.
pub const MAX_SCRIPT: usize = 1 << 20;

/// Compiles a script's text.
pub fn compile(script: &str) -> Result<compile::Program, Error> {
    if script.len() > MAX_SCRIPT {
        return Err(Error::at(
            1,
            1,
            format!("script larger than {MAX_SCRIPT} octets"),
        ));
    }
    let tokens = lexer::tokens(script)?;
    let tree = parser::parse(tokens)?;
    compile::compile(&tree)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: \"Boss\" <boss@work.example>\r\nTo: me+lists@ours.example, other@x.example\r\nSubject: =?utf-8?q?R=C3=A9union?= tomorrow\r\nList-Id: <dev.lists.example>\r\n\r\nbody\r\n";

    fn run(script: &str) -> Vec<Action> {
        let program = compile(script).unwrap_or_else(|e| panic!("{e}"));
        let fields = eval::Fields::of(MESSAGE);
        let input = Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "bounce@work.example",
            envelope_to: "me+lists@ours.example",
            delimiter: "+",
            message: MESSAGE,
        };
        eval::run(&program, &input, eval::Limits::default()).unwrap()
    }

    /// No message at all: for scripts whose outcome does not read it.
    fn empty_input() -> Input<'static> {
        Input {
            headers: &[],
            starts: &[],
            envelope_from: "",
            envelope_to: "",
            delimiter: "+",
            message: b"",
        }
    }

    fn into(mailbox: &str) -> Action {
        Action::FileInto {
            mailbox: mailbox.into(),
            create: false,
            flags: Vec::new(),
        }
    }

    #[test]
    fn no_script_and_keep() {
        assert_eq!(run(""), [Action::keep()]);
        assert_eq!(run("keep;"), [Action::keep()]);
        assert_eq!(run("discard;"), [Action::Discard]);
        assert_eq!(run("discard; keep;"), [Action::keep()]);
    }

    #[test]
    fn tests_and_actions() {
        let script = r#"
            require ["fileinto", "envelope", "subaddress", "copy"];
            # Decoded subject, case-insensitive by default.
            if header :contains "subject" "réunion" { fileinto "Meetings"; }
            if address :domain :is "from" "work.example" { fileinto :copy "Work"; }
            if envelope :detail "to" "lists" { fileinto "Lists"; stop; }
            fileinto "Never";
        "#;
        assert_eq!(run(script), [into("Meetings"), into("Work"), into("Lists")]);
        let script = r#"require "fileinto";
            if allof (exists ["list-id", "from"], not size :over 1M, anyof (false, true)) {
                fileinto :create "Lists/dev";
            } elsif true { discard; } else { keep; }"#;
        assert_eq!(
            run(script),
            [Action::FileInto {
                mailbox: "Lists/dev".into(),
                create: true,
                flags: Vec::new(),
            }]
        );
        assert_eq!(
            run("if header :matches \"from\" \"*<boss@*\" { redirect \"archive@ours.example\"; }"),
            [Action::Redirect("archive@ours.example".into())]
        );
        assert_eq!(
            run("require \"copy\"; redirect :copy \"a@ours.example\";"),
            [Action::Redirect("a@ours.example".into()), Action::keep()]
        );
        assert_eq!(
            run("if address :all :is \"to\" \"other@x.example\" { discard; }"),
            [Action::Discard]
        );
    }

    #[test]
    fn relational_body_and_reject() {
        let r = r#"require ["relational", "comparator-i;ascii-numeric", "fileinto", "body"];
            if header :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "One"; }
            if address :count "ge" :comparator "i;ascii-numeric" "to" "2" { fileinto "Two"; }
            if header :value "gt" "subject" "Q" { fileinto "AfterQ"; }
            if body :contains "BODY" { fileinto "Body"; }
            if body :raw :contains "nothing" { fileinto "Never"; }"#;
        assert_eq!(
            run(r),
            [into("One"), into("Two"), into("AfterQ"), into("Body")]
        );
        assert_eq!(
            run("require \"reject\"; reject \"not here\";"),
            [Action::Reject("not here".into())]
        );
        let both = compile("require \"reject\"; reject \"x\"; keep;").unwrap();
        let input = empty_input();
        assert!(eval::run(&both, &input, eval::Limits::default()).is_err());
        assert!(compile("if header :value \"gt\" \"a\" \"b\" { keep; }").is_err());
        assert!(
            compile("require \"relational\"; if header :value \"xx\" \"a\" \"b\" { keep; }")
                .is_err()
        );
    }

    #[test]
    fn variables_and_match_captures() {
        let script = r#"require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
            if header :matches "list-id" "<*.lists.example>" { set "list" "${1}"; }
            set :upperfirst "name" "${list}";
            if string :is "${name}" "Dev" { fileinto "Lists/${name}"; }
            if address :matches "from" "*@*" { set :lower "dom" "${2}"; }
            if string :contains "${dom}" "work" { redirect "${dom}-archive@ours.example"; }
            set "count" "${unknown}x";
            if string :count "eq" :comparator "i;ascii-numeric" ["${count}", ""] "1" { fileinto "Counted"; }
        "#;
        assert_eq!(
            run(script),
            [
                into("Lists/Dev"),
                Action::Redirect("work.example-archive@ours.example".into()),
                into("Counted")
            ]
        );
        // Without require "variables", "${x}" is text.
        assert!(compile("set \"a\" \"b\";").is_err());
        assert_eq!(
            run("require \"fileinto\"; fileinto \"${x}\";"),
            [into("${x}")]
        );
        assert!(compile("require \"variables\"; set \"1a\" \"b\";").is_err());
        assert!(compile("require \"variables\"; set :lower :upper \"a\" \"b\";").is_err());
    }

    #[test]
    fn imap4flags() {
        let flagged = |mailbox: &str, flags: &[&str]| Action::FileInto {
            mailbox: mailbox.into(),
            create: false,
            flags: flags.iter().map(|f| f.to_string()).collect(),
        };
        let script = r#"require ["imap4flags", "fileinto", "variables"];
            setflag "\\seen";
            addflag ["\\Flagged $Work", "$work"];
            removeflag "\\Seen";
            if hasflag :is "$Work" { fileinto "Work"; }
            addflag "mine" "\\Answered";
            fileinto :flags "${mine} x" "Other";
            if not hasflag "mine" "\\Seen" { keep; }
        "#;
        assert_eq!(
            run(script),
            [
                flagged("Work", &["\\Flagged", "$Work"]),
                flagged("Other", &["\\Answered", "x"]),
                Action::Keep {
                    flags: vec!["\\Flagged".into(), "$Work".into()]
                }
            ]
        );
        // The implicit keep takes the internal flags.
        assert_eq!(
            run("require \"imap4flags\"; addflag \"\\\\Flagged\";"),
            [Action::Keep {
                flags: vec!["\\Flagged".into()]
            }]
        );
        assert!(compile("keep :flags \"x\";").is_err());
    }

    #[test]
    fn vacation_is_an_action_beside_keep() {
        let got = run(r#"require ["vacation", "variables"];
            set "who" "Alice";
            vacation :days 3 :subject "Away" :addresses ["me@ours.example"] "${who} is away";"#);
        let [Action::Vacation(v), keep] = got.as_slice() else {
            panic!("{got:?}");
        };
        assert_eq!(*keep, Action::keep());
        assert_eq!(v.period, Some(3 * 86_400));
        assert_eq!(v.reason, "Alice is away");
        assert_eq!(v.addresses, ["me@ours.example"]);
        assert!(compile("require \"vacation\"; vacation :seconds 5 \"x\";").is_err());
        assert!(
            compile("require [\"vacation\", \"vacation-seconds\"]; vacation :seconds 5 \"x\";")
                .is_ok()
        );
        let twice =
            compile("require \"vacation\"; vacation \"a\"; vacation :handle \"b\" \"b\";").unwrap();
        assert!(eval::run(&twice, &empty_input(), eval::Limits::default()).is_err());
    }

    struct Library(Vec<(compile::Location, &'static str, &'static str)>);

    impl eval::Context for Library {
        fn load(
            &self,
            location: compile::Location,
            name: &str,
        ) -> Option<std::sync::Arc<compile::Program>> {
            self.0
                .iter()
                .find(|(l, n, _)| *l == location && *n == name)
                .map(|(_, _, text)| std::sync::Arc::new(compile(text).unwrap()))
        }
    }

    #[test]
    fn include_return_and_globals() {
        use compile::Location::{Global, Personal};
        let library = Library(vec![
            (
                Global,
                "spam",
                "require [\"fileinto\", \"include\", \"variables\"]; global \"seen\";\n\
                 if header :contains \"subject\" \"tomorrow\" { set \"seen\" \"yes\"; return; }\n\
                 fileinto \"Never\";",
            ),
            (
                Personal,
                "lists",
                "require [\"fileinto\", \"variables\"]; set \"seen\" \"local\"; fileinto \"Lists\";",
            ),
            (Personal, "loop", "require \"include\"; include \"loop\";"),
        ]);
        let user = compile(
            r#"require ["include", "variables", "fileinto"];
            global "seen";
            include :global "spam";
            include :once "lists";
            include :once "lists";
            include :optional "missing";
            if string :is "${seen}" "yes" { fileinto "Seen-${seen}"; }"#,
        )
        .unwrap();
        let fields = eval::Fields::of(MESSAGE);
        let input = Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "",
            envelope_to: "",
            delimiter: "+",
            message: MESSAGE,
        };
        let got = eval::run_all(&[&user], &input, eval::Limits::default(), &library)
            .unwrap()
            .actions;
        assert_eq!(got, [into("Lists"), into("Seen-yes")]);
        for script in [
            "require \"include\"; include \"missing\";",
            "require \"include\"; include \"loop\";",
        ] {
            let p = compile(script).unwrap();
            assert!(
                eval::run_all(&[&p], &input, eval::Limits::default(), &library).is_err(),
                "{script}"
            );
        }
        // Scripts before and after the user's: actions add up, stop ends all.
        let before =
            compile("require [\"fileinto\", \"copy\"]; fileinto :copy \"Audit\";").unwrap();
        let stop = compile("stop;").unwrap();
        let after = compile("discard;").unwrap();
        let got = eval::run_all(
            &[&before, &stop, &after],
            &input,
            eval::Limits::default(),
            &library,
        )
        .unwrap()
        .actions;
        assert_eq!(got, [into("Audit"), Action::keep()]);
    }

    #[test]
    fn editheader() {
        let message = b"Received: from a\r\nX-Tag: one\r\nSubject: hi\r\nX-Tag: two\r\n  folded\r\nX-Tag: three\r\n\r\nbody\r\n";
        let fields = eval::Fields::of(message);
        let input = Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "",
            envelope_to: "",
            delimiter: "+",
            message,
        };
        let run = |script: &str| {
            let p = compile(script).unwrap_or_else(|e| panic!("{e}"));
            eval::run_all(&[&p], &input, eval::Limits::default(), &eval::Detached)
        };
        let out = run(r#"require ["editheader", "fileinto", "variables"];
            addheader "X-Sieve" "filtered";
            addheader :last "X-Note" "café";
            deleteheader :index 2 "x-tag";
            deleteheader :matches "X-Tag" "th*";
            deleteheader "received";
            if header :is "x-sieve" "filtered" { fileinto "Seen"; }"#)
        .unwrap();
        assert_eq!(out.actions, [into("Seen")]);
        assert_eq!(
            String::from_utf8(out.edited.unwrap()).unwrap(),
            "X-Sieve: filtered\r\nReceived: from a\r\nX-Tag: one\r\nSubject: hi\r\nX-Note: =?utf-8?b?Y2Fmw6k=?=\r\n\r\nbody\r\n"
        );
        let out = run("require \"editheader\"; deleteheader :index 1 :last \"X-Tag\";").unwrap();
        assert!(
            !String::from_utf8(out.edited.unwrap())
                .unwrap()
                .contains("three")
        );
        assert!(run("keep;").unwrap().edited.is_none());
        let many =
            "require \"editheader\";\n".to_string() + &"addheader \"X-A\" \"1\";\n".repeat(65);
        assert!(run(&many).is_err());
        assert!(compile("require \"editheader\"; addheader \"Bad:Name\" \"x\";").is_err());
        assert!(compile("require \"editheader\"; deleteheader :last \"x\";").is_err());
    }

    struct Account;

    impl eval::Context for Account {
        fn mailbox_exists(&self, name: &str) -> bool {
            name == "INBOX" || name == "Trash"
        }
        fn special_use(&self, attribute: &str) -> Option<String> {
            (attribute == "\\Junk").then(|| "Spam".to_string())
        }
        fn has_special_use(&self, mailbox: &str, attribute: &str) -> bool {
            mailbox == "Spam" && attribute == "\\Junk"
        }
        fn spam(&self) -> Option<(f64, f64)> {
            Some((7.5, 5.0))
        }
    }

    fn run_with(script: &str, context: &dyn eval::Context) -> Vec<Action> {
        let program = compile(script).unwrap_or_else(|e| panic!("{e}"));
        let fields = eval::Fields::of(MESSAGE);
        let input = Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "bounce@work.example",
            envelope_to: "me+lists@ours.example",
            delimiter: "+",
            message: MESSAGE,
        };
        eval::run_all(&[&program], &input, eval::Limits::default(), context)
            .unwrap()
            .actions
    }

    #[test]
    fn mailbox_special_use_spamtest_environment() {
        let script = r#"require ["fileinto", "mailbox", "special-use", "spamtest", "spamtestplus",
                "relational", "comparator-i;ascii-numeric", "environment"];
            if mailboxexists ["INBOX", "Trash"] { fileinto "Both"; }
            if mailboxexists "Nope" { fileinto "Never"; }
            if specialuse_exists "\\Junk" { fileinto "HasJunk"; }
            if specialuse_exists "Spam" ["\\Junk"] { fileinto "SpamIsJunk"; }
            if spamtest :value "ge" :comparator "i;ascii-numeric" "7" { fileinto :specialuse "\\Junk" "Junk"; }
            if spamtest :percent :value "eq" :comparator "i;ascii-numeric" "75" { fileinto "Pct"; }
            if environment :is "location" "MDA" { fileinto "Env"; }
        "#;
        assert_eq!(
            run_with(script, &Account),
            [
                into("Both"),
                into("HasJunk"),
                into("SpamIsJunk"),
                into("Spam"),
                into("Pct"),
                into("Env")
            ]
        );
        // Detached: not tested (spamtest "0", :percent no value).
        let untested = r#"require ["fileinto", "spamtestplus", "relational", "comparator-i;ascii-numeric"];
            if spamtest :is "0" { fileinto "Untested"; }
            if spamtest :percent :count "eq" :comparator "i;ascii-numeric" "0" { fileinto "NoValue"; }"#;
        assert_eq!(run(untested), [into("Untested"), into("NoValue")]);
        assert!(compile("require \"spamtest\"; if spamtest :percent \"1\" { keep; }").is_err());
    }

    #[test]
    fn ihave_error_and_regex() {
        let script = r#"require ["ihave", "fileinto", "variables"];
            if ihave "x-unknown-thing" { xunknowncommand "whatever"; }
            elsif ihave "regex" {
                if header :regex "subject" "^(R.)union (to.*)$" { fileinto "${1}-${2}"; }
            }
            if not ihave "x-other" { fileinto "NotHave"; }"#;
        assert_eq!(run(script), [into("Ré-tomorrow"), into("NotHave")]);
        assert!(
            compile("require \"regex\"; if header :regex \"subject\" \"(\" { keep; }").is_err()
        );
        let p = compile("require \"ihave\"; error \"stop here\";").unwrap();
        let e = eval::run(&p, &empty_input(), eval::Limits::default()).unwrap_err();
        assert!(e.message.contains("stop here"), "{e}");
    }

    #[test]
    fn date_currentdate_and_index() {
        let message = b"Received: from first\r\nReceived: from second\r\nDate: Thu, 3 Dec 2026 23:30:05 -0500\r\nSubject: x\r\n\r\nbody\r\n";
        let fields = eval::Fields::of(message);
        let input = Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "",
            envelope_to: "",
            delimiter: "+",
            message,
        };
        let script = r#"require ["date", "index", "fileinto", "relational", "variables"];
            if date :originalzone "date" "date" "2026-12-03" { fileinto "Orig"; }
            if date "date" "date" "2026-12-04" { fileinto "Utc"; }
            if date :zone "+0100" "date" "hour" "05" { fileinto "Plus1"; }
            if date :value "ge" "date" "year" "2026" { fileinto "Recent"; }
            if header :index 1 :last :contains "received" "second" { fileinto "LastHop"; }
            if header :index 2 :contains "received" "first" { fileinto "Never"; }
            if currentdate :matches "iso8601" "*" { set "now" "${0}"; }
            if string :matches "${now}" "????-??-??T*" { fileinto "Now"; }
            if date "x-missing" "year" "2026" { fileinto "Never"; }"#;
        let p = compile(script).unwrap_or_else(|e| panic!("{e}"));
        let got = eval::run_all(&[&p], &input, eval::Limits::default(), &eval::Detached)
            .unwrap()
            .actions;
        assert_eq!(
            got,
            [
                into("Orig"),
                into("Utc"),
                into("Plus1"),
                into("Recent"),
                into("LastHop"),
                into("Now")
            ]
        );
        assert!(compile("require \"date\"; if date \"date\" \"eon\" \"1\" { keep; }").is_err());
        assert!(compile("require \"date\"; if header :index 1 \"a\" \"b\" { keep; }").is_err());
    }

    #[test]
    fn enotify_tests_and_encodeurl() {
        let script = r#"require ["enotify", "variables", "fileinto"];
            set :encodeurl "s" "a b&c";
            if valid_notify_method "mailto:x@ours.example?subject=${s}" { fileinto "Valid"; }
            if valid_notify_method "xmpp:x@ours.example" { fileinto "Never"; }
            if notify_method_capability "mailto:x@ours.example" "Online" "maybe" { fileinto "Maybe"; }
            notify :importance "1" :message "hi" "mailto:x@ours.example?subject=${s}";"#;
        let got = run(script);
        assert_eq!(got[..2], [into("Valid"), into("Maybe")]);
        let Action::Notify(n) = &got[2] else {
            panic!("{got:?}");
        };
        assert_eq!(n.method, "mailto:x@ours.example?subject=a%20b%26c");
        assert!(compile("require \"enotify\"; notify \"xmpp:a@b\";").is_err());
        assert!(
            compile("require \"enotify\"; notify :importance \"9\" \"mailto:a@b.example\";")
                .is_err()
        );
        assert!(compile("require [\"vacation\", \"fcc\"]; vacation :create \"x\";").is_err());
    }

    #[test]
    fn body_content() {
        let message = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nplain words\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>html words</p>\r\n--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi1wZGYgYnl0ZXM=\r\n--b--\r\n";
        let fields = eval::Fields::of(message);
        let input = Input {
            headers: &fields.headers,
            starts: &fields.starts,
            envelope_from: "",
            envelope_to: "",
            delimiter: "+",
            message,
        };
        let script = r#"require ["body", "fileinto"];
            if body :content "text/html" :contains "<p>html" { fileinto "Html"; }
            if body :content "text/html" :contains "plain words" { fileinto "Never"; }
            if body :content "application" :contains "%PDF-pdf" { fileinto "Pdf"; }
            if body :content "text" :contains "pdf bytes" { fileinto "Never"; }
            if body :content "" :contains "plain words" { fileinto "Any"; }"#;
        let p = compile(script).unwrap_or_else(|e| panic!("{e}"));
        let got = eval::run_all(&[&p], &input, eval::Limits::default(), &eval::Detached)
            .unwrap()
            .actions;
        assert_eq!(got, [into("Html"), into("Pdf"), into("Any")]);
    }

    #[test]
    fn run_limits_hold() {
        let input = empty_input();
        let limits = eval::Limits {
            max_actions: 3,
            max_steps: 50,
            max_include_depth: 2,
            ..eval::Limits::default()
        };
        let four = compile(
            "require \"fileinto\"; fileinto \"a\"; fileinto \"b\"; fileinto \"c\"; fileinto \"d\";",
        )
        .unwrap();
        let e = eval::run(&four, &input, limits).unwrap_err();
        assert!(e.message.contains("more than 3 actions"), "{e}");
        let long = compile(&"if true { keep; }\n".repeat(30)).unwrap();
        let e = eval::run(&long, &input, limits).unwrap_err();
        assert!(e.message.contains("ran too long"), "{e}");
        // a includes b includes c: depth 3 > 2.
        use compile::Location::Personal;
        let chain = Library(vec![
            (Personal, "a", "require \"include\"; include \"b\";"),
            (Personal, "b", "require \"include\"; include \"c\";"),
            (Personal, "c", "keep;"),
        ]);
        let top = compile("require \"include\"; include \"a\";").unwrap();
        let e = eval::run_all(&[&top], &input, limits, &chain).unwrap_err();
        assert!(e.message.contains("nested deeper than 2"), "{e}");
        let ok = eval::Limits {
            max_include_depth: 3,
            ..limits
        };
        assert!(eval::run_all(&[&top], &input, ok, &chain).is_ok());
    }

    #[test]
    fn compile_errors_name_the_place() {
        for (script, line, what) in [
            ("fileinto \"x\";", 1, "missing require \"fileinto\""),
            (
                "keep;\nrequire \"fileinto\";",
                2,
                "require must come before",
            ),
            ("require \"vacation-xyz\";", 1, "unsupported extension"),
            ("if true keep;", 1, "if needs a block"),
            ("else { keep; }", 1, "else without if"),
            ("if header :is \"a\" { keep; }", 1, "expected a string"),
            ("if size 10 { keep; }", 1, ":over or :under"),
            ("frobnicate;", 1, "unknown command"),
            ("if bogus { keep; }", 1, "unknown test"),
            ("redirect \"not an address\";", 1, "is not an address"),
            ("keep :copy;", 1, "unknown tag :copy"),
        ] {
            let e = compile(script).unwrap_err();
            assert_eq!(e.line, line, "{script}: {e}");
            assert!(e.message.contains(what), "{script}: {e}");
        }
    }

    #[test]
    fn bounds_hold() {
        let many = "redirect \"a@b.example\";\nredirect \"c@b.example\";\nredirect \"d@b.example\";\nredirect \"e@b.example\";\nredirect \"f@b.example\";";
        let program = compile(many).unwrap();
        let input = empty_input();
        assert!(eval::run(&program, &input, eval::Limits::default()).is_err());
        let huge = "keep;".repeat(MAX_SCRIPT / 4);
        assert!(compile(&huge).is_err());
    }

    #[test]
    fn arbitrary_input_never_panics() {
        let pieces = [
            "if", "{", "}", "(", ")", "[", "]", ",", ";", "\"x\"", ":is", "text:\n", ".\n", "1K",
            "header", "not", "anyof", "#", "/*", "*/", "\\", "é", "require", "fileinto", "\n",
        ];
        let mut seed = 7u64;
        for _ in 0..3000 {
            let mut script = String::new();
            for _ in 0..(seed % 40) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                script.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
                script.push(' ');
            }
            let _ = compile(&script);
        }
    }
}
