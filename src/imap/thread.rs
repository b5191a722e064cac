//! THREAD (RFC 5256 §4): ORDEREDSUBJECT and REFERENCES over the
//! [`Fields`] of the matching messages, and the `thread-list` rendering
//! of the result. Sans-IO.
//!
//! Reference chains come from other people's headers and can be long or
//! hostile (one message can name a million IDs), so the trees are kept in
//! an arena and walked without recursion, and a message's References
//! list is cut to its first ID and last [`MAX_REFERENCES`] - 1.

use super::sort::Fields;
use std::collections::HashMap;

/// References used per message (RFC 5322 §3.6.4 lets writers trim the
/// list in the same way: the first ID and the most recent ones).
pub const MAX_REFERENCES: usize = 100;

/// One node: a message (index into the input) or a dummy.
#[derive(Debug, Clone, Default)]
struct Node {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

/// The threads: trees of nodes, in display order.
#[derive(Debug, Default)]
pub struct Forest {
    nodes: Vec<Node>,
    roots: Vec<usize>,
}

/// Sort key for sent-date ordering: sent date, then sequence number.
type DateKey = (i64, u32);

impl Forest {
    fn add(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Node {
            msg,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    fn node(&self, n: usize) -> Option<&Node> {
        self.nodes.get(n)
    }

    fn msg(&self, n: usize) -> Option<usize> {
        self.node(n).and_then(|n| n.msg)
    }

    fn parent(&self, n: usize) -> Option<usize> {
        self.node(n).and_then(|n| n.parent)
    }

    fn children(&self, n: usize) -> &[usize] {
        self.node(n).map_or(&[], |n| n.children.as_slice())
    }

    fn take_children(&mut self, n: usize) -> Vec<usize> {
        self.nodes
            .get_mut(n)
            .map(|n| std::mem::take(&mut n.children))
            .unwrap_or_default()
    }

    fn set_children(&mut self, n: usize, children: Vec<usize>) {
        for &c in &children {
            if let Some(child) = self.nodes.get_mut(c) {
                child.parent = Some(n);
            }
        }
        if let Some(node) = self.nodes.get_mut(n) {
            node.children = children;
        }
    }

    /// Would making `parent` the parent of `child` close a loop (is
    /// `child` the same as `parent` or one of its ancestors)?
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        if parent == child {
            return true;
        }
        if self.children(child).is_empty() {
            // A childless node is nobody's ancestor.
            return false;
        }
        let mut cur = parent;
        // Bounded, even if the tree were broken.
        for _ in 0..=self.nodes.len() {
            match self.parent(cur) {
                Some(p) if p == child => return true,
                Some(p) => cur = p,
                None => return false,
            }
        }
        true
    }

    fn link(&mut self, parent: usize, child: usize) {
        if let Some(c) = self.nodes.get_mut(child) {
            c.parent = Some(parent);
        }
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.push(child);
        }
    }

    fn unlink(&mut self, child: usize) {
        let Some(parent) = self.parent(child) else {
            return;
        };
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.retain(|&c| c != child);
        }
        if let Some(c) = self.nodes.get_mut(child) {
            c.parent = None;
        }
    }

    /// Every node under `tops`, each after all of its descendants.
    fn post_order(&self, tops: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut stack: Vec<(usize, bool)> = tops.iter().rev().map(|&n| (n, false)).collect();
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                out.push(n);
                continue;
            }
            stack.push((n, true));
            stack.extend(self.children(n).iter().rev().map(|&c| (c, false)));
        }
        out
    }

    /// Sent-date key of a node: its message's, or for a dummy its first
    /// child's (children sorted first).
    fn key(&self, n: usize, msgs: &[Fields]) -> DateKey {
        let mut cur = n;
        for _ in 0..=self.nodes.len() {
            if let Some(m) = self.msg(cur) {
                return date_key(msgs, m);
            }
            match self.children(cur).first() {
                Some(&c) => cur = c,
                None => break,
            }
        }
        (i64::MAX, u32::MAX)
    }

    /// Sorts the children of `nodes` (given deepest first) and then the
    /// roots by sent date (§4 steps 4 and 6).
    fn sort_by_date(&mut self, nodes: &[usize], msgs: &[Fields]) {
        for &n in nodes {
            let mut children = self.take_children(n);
            children.sort_by_cached_key(|&c| self.key(c, msgs));
            self.set_children(n, children);
        }
        let mut roots = std::mem::take(&mut self.roots);
        roots.sort_by_cached_key(|&r| self.key(r, msgs));
        self.roots = roots;
    }

    /// The message whose subject stands for a root's thread: its own, or
    /// a dummy's first child's.
    fn subject_msg(&self, n: usize) -> Option<usize> {
        self.msg(n)
            .or_else(|| self.children(n).first().and_then(|&c| self.msg(c)))
    }

    /// The `thread-list`s of every thread (RFC 5256 §5), `number` giving
    /// the sequence number or UID of a message; empty without threads.
    pub fn format(&self, number: impl Fn(usize) -> u32) -> String {
        enum Step {
            Text(&'static str),
            /// A node's members; `space` when something precedes them in
            /// the same list.
            Members(usize, bool),
        }
        let mut out = String::new();
        let mut stack: Vec<Step> = Vec::new();
        for &root in self.roots.iter().rev() {
            if self.msg(root).is_none() && self.children(root).is_empty() {
                continue;
            }
            stack.push(Step::Text(")"));
            stack.push(Step::Members(root, false));
            stack.push(Step::Text("("));
        }
        while let Some(step) = stack.pop() {
            let (n, mut space) = match step {
                Step::Text(t) => {
                    out.push_str(t);
                    continue;
                }
                Step::Members(n, space) => (n, space),
            };
            if let Some(m) = self.msg(n) {
                if space {
                    out.push(' ');
                }
                out.push_str(&number(m).to_string());
                space = true;
            }
            match self.children(n) {
                [] => {}
                [only] => stack.push(Step::Members(*only, space)),
                several => {
                    if space {
                        out.push(' ');
                    }
                    for &c in several.iter().rev() {
                        stack.push(Step::Text(")"));
                        stack.push(Step::Members(c, false));
                        stack.push(Step::Text("("));
                    }
                }
            }
        }
        out
    }
}

fn date_key(msgs: &[Fields], m: usize) -> DateKey {
    msgs.get(m)
        .map_or((i64::MAX, u32::MAX), |f| (f.sent, f.seq))
}

/// ORDEREDSUBJECT (§4): messages grouped by base subject, each group a
/// thread whose first message (by sent date) is the parent of the rest;
/// threads ordered by the sent date of their first message.
pub fn ordered_subject(msgs: &[Fields]) -> Forest {
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        let subject = |m: usize| msgs.get(m).map_or("", |f| f.subject.as_str());
        subject(a)
            .cmp(subject(b))
            .then_with(|| date_key(msgs, a).cmp(&date_key(msgs, b)))
    });
    let mut forest = Forest::default();
    let mut current: Option<(usize, &str)> = None;
    for m in order {
        let subject = msgs.get(m).map_or("", |f| f.subject.as_str());
        let n = forest.add(Some(m));
        match current {
            Some((root, s)) if s == subject => forest.link(root, n),
            _ => {
                forest.roots.push(n);
                current = Some((n, subject));
            }
        }
    }
    let mut roots = std::mem::take(&mut forest.roots);
    roots.sort_by_cached_key(|&r| forest.key(r, msgs));
    forest.roots = roots;
    forest
}

/// REFERENCES (§4 steps 1-6). `msgs` may come in any order; sequence
/// numbers decide which of two messages with one ID keeps it.
pub fn references(msgs: &[Fields]) -> Forest {
    let mut forest = Forest::default();
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by_key(|&m| msgs.get(m).map_or(u32::MAX, |f| f.seq));

    // (1) Link messages by their references.
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for m in order {
        let Some(f) = msgs.get(m) else {
            continue;
        };
        // A missing, invalid or duplicate Message-ID gets a unique node.
        let own = match f.message_id.as_deref() {
            Some(id) => match ids.get(id) {
                Some(&n) if forest.msg(n).is_none() => {
                    if let Some(node) = forest.nodes.get_mut(n) {
                        node.msg = Some(m);
                    }
                    n
                }
                Some(_) => forest.add(Some(m)),
                None => {
                    let n = forest.add(Some(m));
                    ids.insert(id, n);
                    n
                }
            },
            None => forest.add(Some(m)),
        };
        let refs = trimmed(&f.references);
        let chain: Vec<usize> = refs
            .iter()
            .map(|id| match ids.get(id.as_str()) {
                Some(&n) => n,
                None => {
                    // Not seen (yet): a dummy, used for every later mention.
                    let n = forest.add(None);
                    ids.insert(id.as_str(), n);
                    n
                }
            })
            .collect();
        // (1A) Each reference is the parent of the next, unless the child
        // already has one (a truncated list elsewhere) or it would loop.
        for pair in chain.windows(2) {
            if let [parent, child] = *pair
                && forest.parent(child).is_none()
                && !forest.would_loop(parent, child)
            {
                forest.link(parent, child);
            }
        }
        // (1B) The last reference is this message's parent, replacing any
        // parent set before; no references, no parent.
        forest.unlink(own);
        if let Some(&parent) = chain.last()
            && !forest.would_loop(parent, own)
        {
            forest.link(parent, own);
        }
    }

    // (2) The root set: every node without a parent.
    let tops: Vec<usize> = (0..forest.nodes.len())
        .filter(|&n| forest.parent(n).is_none())
        .collect();

    // (3) Prune dummies, deepest first: a childless dummy goes; a dummy
    // with children is replaced by them, except at the root level where
    // only a dummy with a single child is.
    for n in forest.post_order(&tops) {
        let children = forest.take_children(n);
        let kept = splice_dummies(&forest, children, false);
        forest.set_children(n, kept);
    }
    let roots = splice_dummies(&forest, tops, true);
    for &r in &roots {
        if let Some(node) = forest.nodes.get_mut(r) {
            node.parent = None;
        }
    }
    forest.roots = roots;

    // (4) Sort the roots by sent date (a dummy by its first child).
    let dummies: Vec<usize> = forest
        .roots
        .iter()
        .copied()
        .filter(|&r| forest.msg(r).is_none())
        .collect();
    forest.sort_by_date(&dummies, msgs);

    // (5) Gather root-level threads with the same base subject.
    group_by_subject(&mut forest, msgs);

    // (6) Sort every set of siblings by sent date, deepest first.
    let all = forest.post_order(&forest.roots.clone());
    forest.sort_by_date(&all, msgs);
    forest
}

/// The first reference and the last `MAX_REFERENCES - 1`.
fn trimmed(refs: &[String]) -> Vec<&String> {
    if refs.len() <= MAX_REFERENCES {
        return refs.iter().collect();
    }
    let tail = refs.len() - (MAX_REFERENCES - 1);
    refs.iter().take(1).chain(refs.iter().skip(tail)).collect()
}

/// Step 3 for one list of siblings (their own children already pruned).
fn splice_dummies(forest: &Forest, siblings: Vec<usize>, root_level: bool) -> Vec<usize> {
    let mut kept = Vec::with_capacity(siblings.len());
    for n in siblings {
        if forest.msg(n).is_some() {
            kept.push(n);
            continue;
        }
        match forest.children(n) {
            [] => {}
            several if root_level && several.len() > 1 => kept.push(n),
            children => kept.extend_from_slice(children),
        }
    }
    kept
}

/// Step 5: root-level threads with the same (non-empty) base subject are
/// merged.
fn group_by_subject(forest: &mut Forest, msgs: &[Fields]) {
    let subject_of = |forest: &Forest, n: usize| -> Option<(String, bool)> {
        let f = msgs.get(forest.subject_msg(n)?)?;
        (!f.subject.is_empty()).then(|| (f.subject.clone(), f.reply))
    };
    let is_reply = |forest: &Forest, n: usize| {
        forest
            .msg(n)
            .and_then(|m| msgs.get(m))
            .is_some_and(|f| f.reply)
    };
    // (5B) One thread per subject: a dummy if there is one, else
    // preferably one that is not a reply.
    let mut table: HashMap<String, usize> = HashMap::new();
    for &r in &forest.roots {
        let Some((subject, _)) = subject_of(forest, r) else {
            continue;
        };
        match table.get(&subject) {
            None => {
                table.insert(subject, r);
            }
            Some(&t) => {
                let t_dummy = forest.msg(t).is_none();
                let r_dummy = forest.msg(r).is_none();
                if !t_dummy && (r_dummy || (is_reply(forest, t) && !is_reply(forest, r))) {
                    table.insert(subject, r);
                }
            }
        }
    }
    // (5C) Merge every other thread into the table's.
    let mut slots: Vec<Option<usize>> = forest.roots.iter().map(|&r| Some(r)).collect();
    let mut slot_of: HashMap<usize, usize> = slots
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some(((*r)?, i)))
        .collect();
    for i in 0..slots.len() {
        let Some(Some(r)) = slots.get(i).copied() else {
            continue;
        };
        let Some((subject, _)) = subject_of(forest, r) else {
            continue;
        };
        let Some(&t) = table.get(&subject) else {
            continue;
        };
        if t == r {
            continue;
        }
        let t_dummy = forest.msg(t).is_none();
        let r_dummy = forest.msg(r).is_none();
        if t_dummy && r_dummy {
            // Both dummies: the children become siblings.
            let children = forest.take_children(r);
            for c in children {
                forest.link(t, c);
            }
        } else if t_dummy || (is_reply(forest, r) && !is_reply(forest, t)) {
            forest.link(t, r);
        } else {
            // A new dummy holds both, in the table's place.
            let d = forest.add(None);
            forest.link(d, t);
            forest.link(d, r);
            table.insert(subject, d);
            if let Some(&ts) = slot_of.get(&t) {
                if let Some(slot) = slots.get_mut(ts) {
                    *slot = Some(d);
                }
                slot_of.insert(d, ts);
            }
        }
        if let Some(slot) = slots.get_mut(i) {
            *slot = None;
        }
    }
    forest.roots = slots.into_iter().flatten().collect();
}

/// The valid message IDs (`<id-left@id-right>`) in a header field's
/// value, without brackets and white space; comments and quoted strings
/// outside the brackets are skipped.
pub fn message_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '(' => {
                let mut depth = 1u32;
                while depth > 0 {
                    match chars.next() {
                        None => return out,
                        Some('\\') => {
                            chars.next();
                        }
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some(_) => {}
                    }
                }
            }
            '"' => loop {
                match chars.next() {
                    None => return out,
                    Some('\\') => {
                        chars.next();
                    }
                    Some('"') => break,
                    Some(_) => {}
                }
            },
            '<' => {
                let mut id = String::new();
                loop {
                    match chars.next() {
                        None => return out,
                        Some('>') => break,
                        // `<<id>`: start again at the inner bracket.
                        Some('<') => id.clear(),
                        Some(c) if c.is_whitespace() => {}
                        Some(c) => id.push(c),
                    }
                }
                let valid = id
                    .rsplit_once('@')
                    .is_some_and(|(l, r)| !l.is_empty() && !r.is_empty());
                if valid {
                    out.push(id);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message: sequence number, sent date, subject as in the header,
    /// Message-ID, references.
    fn msg(seq: u32, sent: i64, subject: &str, id: Option<&str>, refs: &[&str]) -> Fields {
        let (base, reply) = super::super::sort::base_subject(subject);
        Fields {
            seq,
            uid: seq + 100,
            sent,
            subject: super::super::sort::unicode_casemap(&base),
            reply,
            message_id: id.map(str::to_string),
            references: refs.iter().map(|r| r.to_string()).collect(),
            ..Fields::default()
        }
    }

    fn refs(msgs: &[Fields]) -> String {
        references(msgs).format(|m| msgs[m].seq)
    }

    fn ordered(msgs: &[Fields]) -> String {
        ordered_subject(msgs).format(|m| msgs[m].seq)
    }

    #[test]
    fn message_id_parsing() {
        assert_eq!(message_ids("<a@b>"), vec!["a@b"]);
        assert_eq!(
            message_ids(" <a@b> (comment <x@y>) \"quoted <q@r>\" <c\r\n @d>"),
            vec!["a@b", "c@d"]
        );
        assert_eq!(
            message_ids("<no-at> <@x> <x@> <> <a@b"),
            Vec::<String>::new()
        );
        assert_eq!(message_ids("<<a@b>"), vec!["a@b"]);
        assert_eq!(message_ids("(unterminated <a@b>"), Vec::<String>::new());
        assert_eq!(message_ids("\"unterminated <a@b>"), Vec::<String>::new());
        assert_eq!(message_ids("(a \\) <x@y>) <ok@z>"), vec!["ok@z"]);
    }

    #[test]
    fn references_follows_reply_chains() {
        let msgs = [
            msg(1, 100, "Plan", Some("p@x"), &[]),
            msg(2, 200, "Re: Plan", Some("r1@x"), &["p@x"]),
            msg(3, 300, "Re: Plan", Some("r2@x"), &["p@x", "r1@x"]),
            msg(4, 250, "Re: Plan", Some("r3@x"), &["p@x"]),
            msg(5, 150, "Other", Some("o@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "(1 (2 3)(4))(5)");
    }

    #[test]
    fn references_dummies_and_promotion() {
        // 2 and 3 reply to a message we do not have: a dummy with two
        // children stays at the root level.
        let msgs = [
            msg(1, 100, "Alpha", Some("a@x"), &[]),
            msg(2, 300, "Re: Missing", Some("b@x"), &["gone@x"]),
            msg(3, 200, "Re: Missing", Some("c@x"), &["gone@x"]),
        ];
        assert_eq!(refs(&msgs), "(1)((3)(2))");
        // A dummy with one child is replaced by it, at any level; a chain of
        // missing messages collapses too.
        let msgs = [
            msg(1, 100, "Beta", Some("a@x"), &["gone1@x", "gone2@x"]),
            msg(
                2,
                200,
                "Re: Beta",
                Some("b@x"),
                &["gone1@x", "a@x", "gone3@x"],
            ),
        ];
        assert_eq!(refs(&msgs), "(1 2)");
        // Under a message, a dummy's children are promoted.
        let msgs = [
            msg(1, 100, "Gamma", Some("g@x"), &[]),
            msg(2, 300, "Re: Gamma", Some("b@x"), &["g@x", "gone@x"]),
            msg(3, 200, "Re: Gamma", Some("c@x"), &["g@x", "gone@x"]),
        ];
        assert_eq!(refs(&msgs), "(1 (3)(2))");
    }

    #[test]
    fn references_truncated_lists_loops_and_duplicates() {
        // Message 2's list was truncated (no a@x): its parent is b@x all
        // the same, and b@x's parent a@x stays as message 3 said.
        let msgs = [
            msg(1, 100, "T", Some("a@x"), &[]),
            msg(2, 300, "Re: T", Some("c@x"), &["b@x"]),
            msg(3, 200, "Re: T", Some("b@x"), &["a@x"]),
        ];
        assert_eq!(refs(&msgs), "(1 3 2)");
        // Loops: each names the other as its parent; a message naming
        // itself.
        let msgs = [
            msg(1, 100, "L", Some("a@x"), &["b@x"]),
            msg(2, 200, "L", Some("b@x"), &["a@x"]),
            msg(3, 300, "Self", Some("s@x"), &["s@x"]),
            msg(4, 400, "Chain", Some("d@x"), &["e@x", "d@x", "e@x"]),
        ];
        // 1 is 2's child; 2 cannot then become 1's.
        assert_eq!(refs(&msgs), "(2 1)(3)(4)");
        // A duplicate Message-ID: the second message gets its own node,
        // and references go to the first.
        let msgs = [
            msg(1, 100, "D", Some("dup@x"), &[]),
            msg(2, 200, "Other D", Some("dup@x"), &[]),
            msg(3, 300, "Re: D", Some("r@x"), &["dup@x"]),
        ];
        assert_eq!(refs(&msgs), "(1 3)(2)");
        // A message without references loses the parent that another
        // message's References gave it (step 1B).
        let msgs = [
            msg(1, 100, "A", Some("a@x"), &[]),
            msg(2, 200, "Re: B", Some("c@x"), &["a@x", "b@x"]),
            msg(3, 50, "B", Some("b@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "(3 2)(1)");
    }

    #[test]
    fn references_groups_root_threads_by_subject() {
        // 1 and 3 start separate threads about "Lunch"; 3 is a reply whose
        // parent is missing and has no References: subject grouping puts
        // it under 1, which is not a reply.
        let msgs = [
            msg(1, 100, "Lunch", Some("l1@x"), &[]),
            msg(2, 150, "Work", Some("w@x"), &[]),
            msg(3, 200, "Re: Lunch", Some("l2@x"), &[]),
            msg(4, 300, "lunch", Some("l3@x"), &[]),
            msg(5, 400, "", Some("e1@x"), &[]),
            msg(6, 500, "Re:", Some("e2@x"), &[]),
        ];
        // 4 is not a reply either: a dummy holds 1 (with 3) and 4.
        assert_eq!(refs(&msgs), "((1 3)(4))(2)(5)(6)");
        // Two dummies with one subject merge their children.
        let msgs = [
            msg(1, 100, "Re: Q", Some("a@x"), &["m1@x"]),
            msg(2, 200, "Re: Q", Some("b@x"), &["m1@x"]),
            msg(3, 300, "Re: Q", Some("c@x"), &["m2@x"]),
            msg(4, 400, "Re: Q", Some("d@x"), &["m2@x"]),
        ];
        assert_eq!(refs(&msgs), "((1)(2)(3)(4))");
        // A message joins a dummy with its subject.
        let msgs = [
            msg(1, 100, "Re: Q", Some("a@x"), &["m1@x"]),
            msg(2, 200, "Re: Q", Some("b@x"), &["m1@x"]),
            msg(3, 50, "Q", Some("c@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "((3)(1)(2))");
        // Two replies: a dummy holds both.
        let msgs = [
            msg(1, 100, "Re: R", Some("a@x"), &[]),
            msg(2, 200, "Fwd: R", Some("b@x"), &[]),
        ];
        assert_eq!(refs(&msgs), "((1)(2))");
    }

    /// RFC 5256 §4's REFERENCES example is built on a real mailbox;
    /// this reproduces its shapes: chains, nested siblings, a dummy root.
    #[test]
    fn thread_list_syntax() {
        let msgs = [
            msg(1, 1, "A", Some("a@x"), &[]),
            msg(2, 2, "Re: A", Some("b@x"), &["a@x"]),
            msg(3, 3, "Re: A", Some("c@x"), &["a@x", "b@x"]),
            msg(4, 4, "Re: A", Some("d@x"), &["a@x", "b@x", "c@x"]),
            msg(5, 5, "Re: A", Some("e@x"), &["a@x", "b@x"]),
            msg(6, 6, "Re: A", Some("f@x"), &["a@x", "b@x", "e@x"]),
            msg(7, 7, "Re: A", Some("g@x"), &["a@x", "b@x", "e@x", "f@x"]),
        ];
        assert_eq!(refs(&msgs), "(1 2 (3 4)(5 6 7))");
        let numbers = references(&msgs).format(|m| msgs[m].uid);
        assert_eq!(numbers, "(101 102 (103 104)(105 106 107))");
        assert_eq!(refs(&[]), "");
        assert_eq!(ordered(&[]), "");
    }

    #[test]
    fn ordered_subject_groups_and_orders() {
        let msgs = [
            msg(1, 500, "Re: Beta", None, &[]),
            msg(2, 100, "beta", None, &[]),
            msg(3, 300, "Alpha", None, &[]),
            msg(4, 200, "[list] BETA", None, &[]),
            msg(5, 200, "Gamma", None, &[]),
            msg(6, 400, "Re: alpha", None, &[]),
            msg(7, 600, "Fwd: Beta", None, &[]),
        ];
        // Threads by their first message's date (ties: sequence number);
        // the rest of a thread are children of its first message.
        assert_eq!(ordered(&msgs), "(2 (4)(1)(7))(5)(3 6)");
    }

    #[test]
    fn deep_and_wide_input_does_not_overflow() {
        // One message naming 200 000 missing ancestors, and a 20 000-long
        // reply chain.
        let long: Vec<String> = (0..200_000).map(|i| format!("m{i}@x")).collect();
        let long_refs: Vec<&str> = long.iter().map(String::as_str).collect();
        let mut msgs = vec![msg(1, 1, "Deep", Some("deep@x"), &long_refs)];
        let ids: Vec<String> = (0..20_000).map(|i| format!("c{i}@x")).collect();
        for (i, id) in ids.iter().enumerate() {
            let parent: Vec<&str> = i
                .checked_sub(1)
                .and_then(|p| ids.get(p))
                .map(String::as_str)
                .into_iter()
                .collect();
            let seq = u32::try_from(i).unwrap() + 2;
            msgs.push(msg(seq, i64::from(seq), "Chain", Some(id), &parent));
        }
        let out = refs(&msgs);
        assert!(out.starts_with("(1)(2 3 4 5 "), "{}", &out[..50]);
        assert!(out.ends_with(" 20000 20001)"));
        let _ = ordered(&msgs);
    }
}
