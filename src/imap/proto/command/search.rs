//! The search-shaped commands: SEARCH, SORT and THREAD with their keys,
//! charsets and ESEARCH return options (RFC 3501 §6.4.4, RFC 4731,
//! RFC 5256, RFC 9394). Part of the command parser, kept apart because
//! the search-key grammar is most of its size.

use super::*;

impl Parser<'_> {
    /// RFC 9394 `partial-range`: `n:m` or `-n:-m`, never 0, both of one
    /// sign; given in either order.
    fn partial_range(&mut self) -> Res<SearchReturn> {
        let bound = |p: &mut Self| -> Res<i64> {
            let negative = p.eat(b'-');
            let n = i64::from(p.number32()?);
            if n == 0 {
                return Err("PARTIAL ranges start at 1".into());
            }
            Ok(if negative { -n } else { n })
        };
        let a = bound(self)?;
        self.expect(b':')?;
        let b = bound(self)?;
        if (a < 0) != (b < 0) {
            return Err("PARTIAL range mixes positive and negative".into());
        }
        // As sent: the answer echoes the range the client gave.
        Ok(SearchReturn::Partial { from: a, to: b })
    }

    /// `RETURN (options) SP`, if there; `RETURN ()` means `ALL`. SAVE
    /// only where `save` (SEARCH, not SORT).
    fn return_options(&mut self, save: bool) -> Res<Option<Vec<SearchReturn>>> {
        let start = self.pos;
        if self.keyword().ok().as_deref() != Some("RETURN") {
            self.pos = start;
            return Ok(None);
        }
        self.sp()?;
        self.expect(b'(')?;
        let mut opts = Vec::new();
        while !self.eat(b')') {
            if !opts.is_empty() {
                self.sp()?;
            }
            opts.push(match self.keyword()?.as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" if save => SearchReturn::Save,
                "PARTIAL" => {
                    self.sp()?;
                    self.partial_range()?
                }
                _ => return Err("unknown return option".into()),
            });
        }
        if opts.is_empty() {
            opts.push(SearchReturn::All);
        }
        self.sp()?;
        Ok(Some(opts))
    }

    pub(super) fn search(&mut self, uid: bool) -> Res<CommandKind> {
        self.sp()?;
        let ret = self.return_options(true)?;
        let start = self.pos;
        if self.keyword().ok().as_deref() == Some("CHARSET") {
            self.sp()?;
            self.charset()?;
            self.sp()?;
        } else {
            self.pos = start;
        }
        let key = self.search_keys()?;
        Ok(CommandKind::Search { uid, key, ret })
    }

    /// A search charset: UTF-8 and US-ASCII (upper-cased); any other is
    /// the `BADCHARSET` error (a tagged NO, RFC 3501 §6.4.4).
    fn charset(&mut self) -> Res<String> {
        let charset = self.astring_utf8()?.to_ascii_uppercase();
        if charset != "UTF-8" && charset != "US-ASCII" {
            return Err("BADCHARSET".into());
        }
        Ok(charset)
    }

    /// One or more search keys, ANDed.
    fn search_keys(&mut self) -> Res<SearchKey> {
        let mut keys = vec![self.search_key(0)?];
        while self.eat(b' ') {
            keys.push(self.search_key(0)?);
        }
        Ok(if keys.len() == 1 {
            keys.pop().unwrap_or(SearchKey::All)
        } else {
            SearchKey::And(keys)
        })
    }

    /// `SORT [RETURN (options)] (criteria) charset keys` (RFC 5256 §5,
    /// ESORT RFC 5267 §3.2): the charset is mandatory here.
    pub(super) fn sort(&mut self, uid: bool) -> Res<CommandKind> {
        self.sp()?;
        let ret = self.return_options(false)?;
        self.expect(b'(')?;
        let mut criteria = Vec::new();
        loop {
            let mut word = self.keyword()?;
            let reverse = word == "REVERSE";
            if reverse {
                self.sp()?;
                word = self.keyword()?;
            }
            let key = match word.as_str() {
                "ARRIVAL" => SortKey::Arrival,
                "CC" => SortKey::Cc,
                "DATE" => SortKey::Date,
                "FROM" => SortKey::From,
                "SIZE" => SortKey::Size,
                "SUBJECT" => SortKey::Subject,
                "TO" => SortKey::To,
                "DISPLAYFROM" => SortKey::DisplayFrom,
                "DISPLAYTO" => SortKey::DisplayTo,
                _ => return Err(format!("unknown sort key {word}")),
            };
            criteria.push(SortCriterion { reverse, key });
            if self.eat(b')') {
                break;
            }
            self.sp()?;
        }
        self.sp()?;
        let charset = self.charset()?;
        self.sp()?;
        let keys = self.search_keys()?;
        Ok(CommandKind::Sort {
            uid,
            criteria,
            charset,
            keys,
            ret,
        })
    }

    /// `THREAD algorithm charset keys` (RFC 5256 §5).
    pub(super) fn thread(&mut self, uid: bool) -> Res<CommandKind> {
        self.sp()?;
        let algorithm = match self.keyword()?.as_str() {
            "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
            "REFERENCES" => ThreadAlgorithm::References,
            _ => return Err("unknown threading algorithm".into()),
        };
        self.sp()?;
        let charset = self.charset()?;
        self.sp()?;
        let keys = self.search_keys()?;
        Ok(CommandKind::Thread {
            uid,
            algorithm,
            charset,
            keys,
        })
    }

    fn search_string(&mut self) -> Res<String> {
        self.sp()?;
        self.astring_utf8()
    }

    fn search_date(&mut self) -> Res<i64> {
        self.sp()?;
        let text = if self.peek() == Some(b'"') {
            self.quoted()?
        } else {
            self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-')
                .to_vec()
        };
        std::str::from_utf8(&text)
            .ok()
            .and_then(parse_date)
            .ok_or_else(|| "invalid date".into())
    }

    fn search_key(&mut self, depth: usize) -> Res<SearchKey> {
        if depth > 32 {
            return Err("search too deeply nested".into());
        }
        if self.eat(b'(') {
            let mut keys = vec![self.search_key(depth + 1)?];
            while self.eat(b' ') {
                keys.push(self.search_key(depth + 1)?);
            }
            self.expect(b')')?;
            return Ok(SearchKey::And(keys));
        }
        if self
            .peek()
            .is_some_and(|b| b.is_ascii_digit() || b == b'*' || b == b'$')
        {
            return Ok(SearchKey::Seq(self.seq_set()?));
        }
        let word = self.keyword()?;
        let flag = |f: &str| SearchKey::Flag(f.into());
        let no_flag = |f: &str| SearchKey::NoFlag(f.into());
        Ok(match word.as_str() {
            "ALL" => SearchKey::All,
            "ANSWERED" => flag("\\Answered"),
            "DELETED" => flag("\\Deleted"),
            "DRAFT" => flag("\\Draft"),
            "FLAGGED" => flag("\\Flagged"),
            "SEEN" => flag("\\Seen"),
            "UNANSWERED" => no_flag("\\Answered"),
            "UNDELETED" => no_flag("\\Deleted"),
            "UNDRAFT" => no_flag("\\Draft"),
            "UNFLAGGED" => no_flag("\\Flagged"),
            "UNSEEN" => no_flag("\\Seen"),
            "NEW" => SearchKey::New,
            "OLD" => SearchKey::Old,
            "RECENT" => SearchKey::Recent,
            "KEYWORD" => {
                self.sp()?;
                SearchKey::Flag(self.flag()?)
            }
            "UNKEYWORD" => {
                self.sp()?;
                SearchKey::NoFlag(self.flag()?)
            }
            "BEFORE" => SearchKey::Before(self.search_date()?),
            "SAVEDBEFORE" => SearchKey::SavedBefore(self.search_date()?),
            "SAVEDON" => SearchKey::SavedOn(self.search_date()?),
            "SAVEDSINCE" => SearchKey::SavedSince(self.search_date()?),
            "SAVEDATESUPPORTED" => SearchKey::SaveDateSupported,
            "ON" => SearchKey::On(self.search_date()?),
            "SINCE" => SearchKey::Since(self.search_date()?),
            "SENTBEFORE" => SearchKey::SentBefore(self.search_date()?),
            "SENTON" => SearchKey::SentOn(self.search_date()?),
            "SENTSINCE" => SearchKey::SentSince(self.search_date()?),
            "LARGER" => {
                self.sp()?;
                SearchKey::Larger(self.number()?)
            }
            "SMALLER" => {
                self.sp()?;
                SearchKey::Smaller(self.number()?)
            }
            "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => {
                SearchKey::Header(word.clone(), self.search_string()?)
            }
            "HEADER" => {
                let name = self.search_string()?;
                SearchKey::Header(name.to_ascii_uppercase(), self.search_string()?)
            }
            "BODY" => SearchKey::Body(self.search_string()?),
            "TEXT" => SearchKey::Text(self.search_string()?),
            "UID" => {
                self.sp()?;
                SearchKey::Uid(self.seq_set()?)
            }
            "MODSEQ" => {
                self.sp()?;
                // Optional entry name and type (RFC 7162 §3.1.5) are accepted and ignored.
                if self.peek() == Some(b'"') {
                    self.quoted()?;
                    self.sp()?;
                    self.keyword()?;
                    self.sp()?;
                }
                SearchKey::ModSeq(self.number()?)
            }
            "OLDER" => {
                self.sp()?;
                SearchKey::Older(self.number()?)
            }
            "EMAILID" => {
                self.sp()?;
                SearchKey::EmailId(self.object_id()?)
            }
            "THREADID" => {
                self.sp()?;
                SearchKey::ThreadId(self.object_id()?)
            }
            "YOUNGER" => {
                self.sp()?;
                SearchKey::Younger(self.number()?)
            }
            "NOT" => {
                self.sp()?;
                SearchKey::Not(Box::new(self.search_key(depth + 1)?))
            }
            "OR" => {
                self.sp()?;
                let a = self.search_key(depth + 1)?;
                self.sp()?;
                let b = self.search_key(depth + 1)?;
                SearchKey::Or(Box::new(a), Box::new(b))
            }
            _ => return Err(format!("unknown search key {word}")),
        })
    }
}
