# A realistic 20-rule personal filter: header, address, envelope, body and
# variables tests, as bench/sieve-load.sh and `cargo bench --bench
# sieve_run` run it. The benchmark message matches none of the filing
# rules, so every test is evaluated (both body tests included).
require ["fileinto", "variables", "envelope", "subaddress", "body", "relational",
         "comparator-i;ascii-numeric", "imap4flags", "mailbox", "copy"];
if header :matches "list-id" "*<*.lists.example.org>*" {
  set :lower "list" "${2}"; fileinto :create "Lists/${list}"; stop;
}
if address :domain :is "from" ["bank.example", "payments.example"] {
  addflag "\\Flagged"; fileinto :create "Finance"; stop;
}
if header :contains "subject" ["invoice", "receipt", "payment due"] { fileinto :create "Finance"; stop; }
if envelope :detail "to" "shop" { fileinto :create "Shopping"; stop; }
if address :is "from" "boss@work.example" { addflag "\\Flagged"; }
if header :contains "x-mailer" "BulkMailer" { fileinto :create "Bulk"; stop; }
if exists "list-unsubscribe" { fileinto :create "Newsletters"; stop; }
if header :matches "subject" "[*]*" { set "tag" "${1}"; }
if string :is "${tag}" "urgent" { addflag "\\Flagged"; }
if size :over 5M { fileinto :create "Large"; stop; }
if body :contains ["unsubscribe from this list", "view this email in your browser"] {
  fileinto :create "Newsletters"; stop;
}
if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "4" { fileinto :create "LowPriority"; stop; }
if address :localpart :is "to" ["noreply", "no-reply"] { discard; stop; }
if anyof (header :contains "subject" "lottery", header :contains "subject" "you have won") {
  fileinto :create "Junk"; stop;
}
if allof (address :domain :is "from" "github.example", header :contains "subject" "pull request") {
  fileinto :create "Code/Reviews"; stop;
}
if header :is "precedence" ["bulk", "list"] { fileinto :create "Bulk"; stop; }
if address :domain :matches "from" "*.partner.example" { fileinto :copy :create "Partners"; }
if body :contains "meeting agenda" { fileinto :create "Meetings"; stop; }
if header :contains "from" "calendar-notification" { fileinto :create "Calendar"; stop; }
if not exists "date" { addflag "$NoDate"; }
