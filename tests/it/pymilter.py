"""A milter for the tests, on Debian's python3-milter (pymilter, which is
libmilter): what it does depends on the sender, the recipient and the
Subject. Run as: /usr/bin/python3 pymilter.py PORT"""
import sys

import Milter


class TestMilter(Milter.Base):
    def __init__(self):
        self.subject = ""

    def envfrom(self, sender, *params):
        self.subject = ""
        if "tempfail" in sender:
            return Milter.TEMPFAIL
        return Milter.CONTINUE

    def envrcpt(self, recipient, *params):
        if "refused" in recipient:
            self.setreply("550", "5.7.1", "recipient refused by pymilter")
            return Milter.REJECT
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eom(self):
        s = self.subject
        if "reject" in s:
            self.setreply("554", "5.7.1", "Spam detected by pymilter")
            return Milter.REJECT
        if "tempfail" in s:
            return Milter.TEMPFAIL
        if "discard" in s:
            return Milter.DISCARD
        self.addheader("X-Milter", "pymilter saw it")
        if "tag" in s:
            self.chgheader("Subject", 1, "[tagged] " + s)
        if "replace" in s:
            self.replacebody(b"The body was replaced by pymilter.\r\n")
        if "quarantine" in s:
            self.quarantine("held by pymilter")
        if "redirect" in s:
            self.delrcpt("<bob@ours.test>")
            self.addrcpt("<carol@ours.test>")
        return Milter.ACCEPT


Milter.factory = TestMilter
Milter.set_flags(
    Milter.ADDHDRS
    | Milter.CHGHDRS
    | Milter.CHGBODY
    | Milter.ADDRCPT
    | Milter.DELRCPT
    | Milter.QUARANTINE
)
Milter.runmilter("merpati-test", "inet:%s@127.0.0.1" % sys.argv[1], 60)
