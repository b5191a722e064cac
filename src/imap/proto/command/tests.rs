use super::*;
use crate::imap::proto::sequence::SeqNum;

fn kind(input: &str) -> CommandKind {
    parse_command(input.as_bytes())
        .unwrap_or_else(|e| panic!("{input}: {e}"))
        .kind
}

fn seq(text: &str) -> SeqSet {
    SeqSet::parse(text).unwrap()
}

#[test]
fn simple_commands() {
    let table = [
        ("a CAPABILITY", CommandKind::Capability),
        ("a noop", CommandKind::Noop),
        ("a LOGOUT", CommandKind::Logout),
        ("a IDLE", CommandKind::Idle),
        ("a ID NIL", CommandKind::Id),
        (
            "a ID (\"name\" \"Thunderbird\" \"version\" NIL)",
            CommandKind::Id,
        ),
        (
            "a LOGIN fauzan \"ra\\\"hasia\"",
            CommandKind::Login {
                user: "fauzan".into(),
                password: "ra\"hasia".into(),
            },
        ),
        (
            "a LOGIN {6}\r\nfauzan {3+}\r\npw!",
            CommandKind::Login {
                user: "fauzan".into(),
                password: "pw!".into(),
            },
        ),
        (
            "a AUTHENTICATE PLAIN AGZhdXphbgBwdw==",
            CommandKind::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some("AGZhdXphbgBwdw==".into()),
            },
        ),
        (
            "a select inbox",
            CommandKind::Select {
                mailbox: "INBOX".into(),
                read_only: false,
                condstore: false,
                qresync: None,
            },
        ),
        (
            "a EXAMINE \"Sent\" (CONDSTORE)",
            CommandKind::Select {
                mailbox: "Sent".into(),
                read_only: true,
                condstore: true,
                qresync: None,
            },
        ),
        (
            "a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1:3 4:6)))",
            CommandKind::Select {
                mailbox: "INBOX".into(),
                read_only: false,
                condstore: false,
                qresync: Some(Qresync {
                    uid_validity: 67890007,
                    modseq: 20050715194045000,
                    known_uids: SeqSet::parse("41,43:211,214:541"),
                    seq_match: SeqSet::parse("1:3").zip(SeqSet::parse("4:6")),
                }),
            },
        ),
        (
            "a EXAMINE INBOX (QRESYNC (1 2))",
            CommandKind::Select {
                mailbox: "INBOX".into(),
                read_only: true,
                condstore: false,
                qresync: Some(Qresync {
                    uid_validity: 1,
                    modseq: 2,
                    known_uids: None,
                    seq_match: None,
                }),
            },
        ),
        (
            "a LIST \"\" *",
            CommandKind::List {
                reference: "".into(),
                patterns: vec!["*".into()],
                subscribed_only: false,
                options: ListOptions::default(),
            },
        ),
        (
            "a LSUB \"\" %/x",
            CommandKind::List {
                reference: "".into(),
                patterns: vec!["%/x".into()],
                subscribed_only: true,
                options: ListOptions::default(),
            },
        ),
        (
            "a STATUS INBOX (MESSAGES UIDNEXT unseen)",
            CommandKind::Status {
                mailbox: "INBOX".into(),
                items: vec![
                    StatusItem::Messages,
                    StatusItem::UidNext,
                    StatusItem::Unseen,
                ],
            },
        ),
        (
            "a APPEND Drafts (\\Seen $x) \"17-Jul-1996 02:44:25 -0700\" {3}\r\nabc",
            CommandKind::Append {
                mailbox: "Drafts".into(),
                messages: vec![AppendMessage {
                    flags: vec!["\\Seen".into(), "$x".into()],
                    date: parse_date_time("17-Jul-1996 02:44:25 -0700"),
                    message: b"abc".to_vec(),
                    binary: false,
                }],
            },
        ),
        (
            "a UID STORE 1:* +FLAGS.SILENT (\\Deleted)",
            CommandKind::Store {
                uid: true,
                set: seq("1:*"),
                op: FlagOp::Add,
                silent: true,
                flags: vec!["\\Deleted".into()],
                unchanged_since: None,
            },
        ),
        (
            "a STORE 2 (UNCHANGEDSINCE 5) FLAGS \\Seen \\Flagged",
            CommandKind::Store {
                uid: false,
                set: seq("2"),
                op: FlagOp::Replace,
                silent: false,
                flags: vec!["\\Seen".into(), "\\Flagged".into()],
                unchanged_since: Some(5),
            },
        ),
        (
            "a UID MOVE 4:5 Trash",
            CommandKind::Copy {
                uid: true,
                set: seq("4:5"),
                mailbox: "Trash".into(),
                remove: true,
            },
        ),
        (
            "a UID EXPUNGE 3",
            CommandKind::Expunge {
                uids: Some(seq("3")),
            },
        ),
        (
            "a ENABLE CONDSTORE",
            CommandKind::Enable(vec!["CONDSTORE".into()]),
        ),
    ];
    for (input, want) in table {
        assert_eq!(kind(input), want, "{input}");
    }
}

#[test]
fn fetch_items() {
    let CommandKind::Fetch {
        uid, set, items, ..
    } = kind(
        "a UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)] BODY[1.2.MIME]<0.100> BODY RFC822.SIZE)",
    )
    else {
        panic!()
    };
    assert!(uid);
    assert_eq!(set.0, vec![(SeqNum::Value(1), SeqNum::Star)]);
    assert_eq!(
        items,
        vec![
            FetchAtt::Flags,
            FetchAtt::Section {
                peek: true,
                section: Section {
                    path: vec![],
                    text: Some(SectionText::HeaderFields {
                        not: false,
                        fields: vec!["From".into(), "To".into()]
                    })
                },
                partial: None
            },
            FetchAtt::Section {
                peek: false,
                section: Section {
                    path: vec![1, 2],
                    text: Some(SectionText::Mime)
                },
                partial: Some((0, 100))
            },
            FetchAtt::Body,
            FetchAtt::Rfc822Size,
        ]
    );
    let CommandKind::Fetch {
        items,
        changed_since,
        ..
    } = kind("a FETCH 1 FAST (CHANGEDSINCE 12)")
    else {
        panic!()
    };
    assert_eq!(items.len(), 3);
    assert_eq!(changed_since, Some(12));
    assert!(matches!(
        kind("a UID FETCH 1:* FLAGS (CHANGEDSINCE 12 VANISHED)"),
        CommandKind::Fetch {
            vanished: true,
            changed_since: Some(12),
            ..
        }
    ));
    for bad in [
        "a FETCH 1:* FLAGS (CHANGEDSINCE 12 VANISHED)",
        "a UID FETCH 1:* FLAGS (VANISHED)",
        "a SELECT INBOX (QRESYNC (0 5))",
        "a SELECT INBOX (QRESYNC (1 5 1:4 1:2))",
    ] {
        assert!(parse_command(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(
        kind("a FETCH 1 BODY[]"),
        CommandKind::Fetch { items, .. } if items == vec![FetchAtt::Section { peek: false, section: Section::default(), partial: None }]
    ));
}

#[test]
fn search_keys() {
    let CommandKind::Search { uid, key, ret } =
        kind("a UID SEARCH CHARSET UTF-8 OR FROM alice (UNSEEN SINCE 1-Feb-2024) NOT 2:4")
    else {
        panic!()
    };
    assert!(uid);
    assert_eq!(ret, None);
    assert_eq!(
        key,
        SearchKey::And(vec![
            SearchKey::Or(
                Box::new(SearchKey::Header("FROM".into(), "alice".into())),
                Box::new(SearchKey::And(vec![
                    SearchKey::NoFlag("\\Seen".into()),
                    SearchKey::Since(parse_date("1-Feb-2024").unwrap())
                ]))
            ),
            SearchKey::Not(Box::new(SearchKey::Seq(seq("2:4"))))
        ])
    );
}

#[test]
fn extension_syntax() {
    let CommandKind::Search { uid, key, ret } =
        kind("a UID SEARCH RETURN (MIN COUNT SAVE) CHARSET UTF-8 YOUNGER 3600 $")
    else {
        panic!()
    };
    assert!(uid);
    assert_eq!(
        ret,
        Some(vec![
            SearchReturn::Min,
            SearchReturn::Count,
            SearchReturn::Save
        ])
    );
    assert_eq!(
        key,
        SearchKey::And(vec![
            SearchKey::Younger(3600),
            SearchKey::Seq(SeqSet::saved())
        ])
    );
    let CommandKind::Search { ret, .. } = kind("a SEARCH RETURN () OLDER 5") else {
        panic!()
    };
    assert_eq!(ret, Some(vec![SearchReturn::All]));
    assert!(matches!(
        kind("a FETCH $ FLAGS"),
        CommandKind::Fetch { set, .. } if set.is_saved()
    ));
    let CommandKind::List {
        patterns, options, ..
    } = kind(
        "a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"INBOX\" %/x) RETURN (CHILDREN STATUS (MESSAGES SIZE))",
    )
    else {
        panic!()
    };
    assert_eq!(patterns, vec!["INBOX".to_string(), "%/x".to_string()]);
    assert!(options.extended && options.sel_subscribed && options.recursive_match);
    assert!(options.ret_children && !options.ret_subscribed);
    assert_eq!(
        options.ret_status,
        Some(vec![StatusItem::Messages, StatusItem::Size])
    );
    let CommandKind::Append { messages, .. } =
        kind("a APPEND INBOX (\\Seen) {3+}\r\nabc ~{2+}\r\nd\0 UTF8 (~{1+}\r\nx)")
    else {
        panic!()
    };
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[1].message, b"d\0");
    assert!(messages[1].binary && !messages[0].binary && messages[2].binary);
    assert_eq!(messages[0].flags, vec!["\\Seen".to_string()]);
    let CommandKind::Fetch { items, .. } =
        kind("a FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY[] BINARY.SIZE[1])")
    else {
        panic!()
    };
    assert_eq!(
        items,
        vec![
            FetchAtt::Binary {
                peek: true,
                path: vec![1, 2],
                partial: Some((0, 10))
            },
            FetchAtt::Binary {
                peek: false,
                path: vec![],
                partial: None
            },
            FetchAtt::BinarySize(vec![1]),
        ]
    );
    assert_eq!(
        kind("a CREATE Archives/2024 (USE (\\Archive))"),
        CommandKind::Create {
            mailbox: "Archives/2024".into(),
            special_use: vec!["\\Archive".into()],
        }
    );
    assert_eq!(
        kind("a create \"&ZeVnLIqe-\" (use ())"),
        CommandKind::Create {
            mailbox: "&ZeVnLIqe-".into(),
            special_use: vec![],
        }
    );
    assert_eq!(
        kind("a CREATE \"日本語\""),
        CommandKind::Create {
            mailbox: "日本語".into(),
            special_use: vec![],
        }
    );
    assert_eq!(
        kind("a GETQUOTAROOT inbox"),
        CommandKind::GetQuotaRoot("INBOX".into())
    );
    assert_eq!(
        kind("a SETQUOTA \"\" (STORAGE 512)"),
        CommandKind::SetQuota("".into())
    );
    for bad in [
        "a LIST (RECURSIVEMATCH) \"\" *",
        "a LIST \"\" * RETURN (FOO)",
        "a SEARCH RETURN (FOO) ALL",
        "a FETCH 1 BINARY[1.TEXT]",
        "a APPEND INBOX",
        "a CREATE x (FOO (\\Sent))",
        "a CREATE x (USE \\Sent)",
        "a CREATE x ()",
    ] {
        assert!(parse_command(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn sort_and_thread() {
    assert_eq!(
        kind("a UID SORT (REVERSE DATE subject reverse SIZE) utf-8 UNSEEN FROM \"bob\""),
        CommandKind::Sort {
            uid: true,
            criteria: vec![
                SortCriterion {
                    reverse: true,
                    key: SortKey::Date
                },
                SortCriterion {
                    reverse: false,
                    key: SortKey::Subject
                },
                SortCriterion {
                    reverse: true,
                    key: SortKey::Size
                },
            ],
            charset: "UTF-8".into(),
            keys: SearchKey::And(vec![
                SearchKey::NoFlag("\\Seen".into()),
                SearchKey::Header("FROM".into(), "bob".into())
            ]),
            ret: None,
        }
    );
    let CommandKind::Sort { ret, .. } = kind("a SORT RETURN (MIN PARTIAL -1:-10) (SIZE) UTF-8 ALL")
    else {
        panic!()
    };
    assert_eq!(
        ret,
        Some(vec![
            SearchReturn::Min,
            SearchReturn::Partial { from: -1, to: -10 }
        ])
    );
    let CommandKind::Sort { criteria, .. } =
        kind("a SORT (ARRIVAL CC FROM TO DISPLAYFROM DISPLAYTO) US-ASCII ALL")
    else {
        panic!()
    };
    let keys: Vec<SortKey> = criteria.iter().map(|c| c.key).collect();
    assert_eq!(
        keys,
        vec![
            SortKey::Arrival,
            SortKey::Cc,
            SortKey::From,
            SortKey::To,
            SortKey::DisplayFrom,
            SortKey::DisplayTo
        ]
    );
    assert_eq!(
        kind("a THREAD REFERENCES UTF-8 ALL"),
        CommandKind::Thread {
            uid: false,
            algorithm: ThreadAlgorithm::References,
            charset: "UTF-8".into(),
            keys: SearchKey::All,
        }
    );
    assert_eq!(
        kind("a uid thread orderedsubject \"us-ascii\" 1:3 (SEEN)"),
        CommandKind::Thread {
            uid: true,
            algorithm: ThreadAlgorithm::OrderedSubject,
            charset: "US-ASCII".into(),
            keys: SearchKey::And(vec![
                SearchKey::Seq(seq("1:3")),
                SearchKey::And(vec![SearchKey::Flag("\\Seen".into())])
            ]),
        }
    );
    for bad in [
        "a SORT",
        "a SORT () UTF-8 ALL",
        "a SORT (DATE)",
        "a SORT (DATE) UTF-8",
        "a SORT DATE UTF-8 ALL",
        "a SORT (REVERSE) UTF-8 ALL",
        "a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
        "a SORT (BOGUS) UTF-8 ALL",
        "a SORT (DATE  SIZE) UTF-8 ALL",
        "a SORT (DATE) UTF-8 ALL extra(",
        "a THREAD UTF-8 ALL",
        "a THREAD FOO UTF-8 ALL",
        "a UID THREAD REFERENCES UTF-8",
    ] {
        let e = parse_command(bad.as_bytes()).unwrap_err();
        assert_ne!(e.reason, "BADCHARSET", "{bad}");
    }
    // The charset is mandatory: a search key in its place is one.
    for badcharset in [
        "a SORT (DATE) ALL",
        "a THREAD REFERENCES ALL",
        "a SORT (DATE) KOI8-R ALL",
        "a UID THREAD REFERENCES \"ISO-8859-1\" ALL",
    ] {
        let e = parse_command(badcharset.as_bytes()).unwrap_err();
        assert_eq!(e.reason, "BADCHARSET", "{badcharset}");
        assert_eq!(e.tag.as_deref(), Some("a"));
    }
}

#[test]
fn malformed_commands_are_errors_not_panics() {
    let table: &[&[u8]] = &[
        b"",
        b" ",
        b"a",
        b"a ",
        b"+ NOOP",
        b"a FOO",
        b"a NOOP extra",
        b"a LOGIN",
        b"a LOGIN \"unterminated",
        b"a LOGIN {5}\r\nab",
        b"a LOGIN {99999999999999999999}\r\n",
        b"a SELECT",
        b"a FETCH 0 FLAGS",
        b"a FETCH 1 (FLAGS",
        b"a FETCH 1 BODY[0]",
        b"a FETCH 1 BODY[1.FOO]",
        b"a FETCH 1 BODY[]<0.0>",
        b"a FETCH 1 BODY.PEEK",
        b"a STORE 1 FLAGS",
        b"a STORE 1 +FOO (\\Seen)",
        b"a SEARCH",
        b"a SEARCH CHARSET KOI8-R ALL",
        b"a SEARCH SINCE 31-Foo-2020",
        b"a SEARCH OR ALL",
        b"a SEARCH ((((((((((((((((((((((((((((((((((((ALL))))))))))))))))))))))))))))))))))",
        b"a UID BOGUS 1",
        b"a APPEND INBOX \"bad date\" {1}\r\nx",
        b"a STATUS INBOX (FOO)",
        b"a LIST \"\"",
        b"a \xff\xfe",
        b"a LOGIN \"\xff\" x",
    ];
    for input in table {
        assert!(
            parse_command(input).is_err(),
            "{}",
            String::from_utf8_lossy(input)
        );
    }
    assert_eq!(
        parse_command(b"t7 FOO").unwrap_err().tag.as_deref(),
        Some("t7")
    );
}

#[test]
fn section_specs_echo() {
    let s = Section {
        path: vec![1, 2],
        text: Some(SectionText::HeaderFields {
            not: true,
            fields: vec!["FROM".into()],
        }),
    };
    assert_eq!(s.spec(), "1.2.HEADER.FIELDS.NOT (FROM)");
    assert_eq!(Section::default().spec(), "");
    assert_eq!(normalize_mailbox("inbox/Sub".into()), "INBOX/Sub");
    assert_eq!(normalize_mailbox("Inboxes".into()), "Inboxes");
}
