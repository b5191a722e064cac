//! `merpati import` in batches: a batch of messages of one account in one
//! write transaction, each stored together with the key that marks it
//! imported, so that one commit (one fsync) serves many messages and a
//! crash can neither lose a message nor store one twice.

use super::*;
use crate::store::{ImportMessage, ImportOutcome, create_missing_mailboxes};

impl RedbStore {
    pub(super) fn import_into(
        &self,
        account: &str,
        messages: &[ImportMessage<'_>],
    ) -> Result<Vec<ImportOutcome>> {
        let account = existing_account(account)?;
        let names = messages
            .iter()
            .map(|m| existing_mailbox(m.mailbox))
            .collect::<Result<Vec<String>>>()?;
        create_missing_mailboxes(self, &account, messages)?;
        // A resumed run skips most messages: no blob files for those.
        let pending = self.not_yet_imported(&account, messages)?;
        let blobs: Vec<Option<u64>> = pending
            .iter()
            .map(|&new| new.then(|| self.alloc_blob()))
            .collect();
        let files: Vec<(u64, &[u8])> = messages
            .iter()
            .zip(&blobs)
            .filter_map(|(m, blob)| blob.map(|b| (b, m.body)))
            .filter(|(_, body)| !is_inline(body))
            .collect();
        self.blobs.write_batch(&files)?;
        let file_ids: Vec<u64> = files.iter().map(|(id, _)| *id).collect();
        let outcomes = self.write_with_blobs(&file_ids, |tx| {
            tx.require_account(&account)?;
            let mut outcomes = Vec::with_capacity(messages.len());
            for ((m, name), blob) in messages.iter().zip(&names).zip(&blobs) {
                let outcome = match blob {
                    Some(blob) => tx.import_one(&account, name, m, *blob)?,
                    None => ImportOutcome::Skipped,
                };
                outcomes.push(outcome);
            }
            Ok(outcomes)
        })?;
        // Bodies of messages skipped or refused inside the transaction.
        let unused: Vec<u64> = outcomes
            .iter()
            .zip(&blobs)
            .filter(|(o, _)| !matches!(o, ImportOutcome::Imported(_)))
            .filter_map(|(_, blob)| *blob)
            .filter(|id| file_ids.contains(id))
            .collect();
        self.blobs.delete_all(&unused);
        Ok(outcomes)
    }

    /// Per message: whether its once-key is still absent.
    fn not_yet_imported(&self, account: &str, messages: &[ImportMessage<'_>]) -> Result<Vec<bool>> {
        let txn = self.read()?;
        let table = txn.open_table(ACCOUNT_DATA)?;
        messages
            .iter()
            .map(|m| Ok(table.get((account, m.once_key))?.is_none()))
            .collect()
    }
}

impl Tx<'_> {
    fn import_one(
        &mut self,
        account: &str,
        mailbox: &str,
        m: &ImportMessage<'_>,
        blob: u64,
    ) -> Result<ImportOutcome> {
        // Checked again inside: another run may have imported it since.
        if self.t.account_data.get((account, m.once_key))?.is_some() {
            return Ok(ImportOutcome::Skipped);
        }
        let id = self
            .resolve(account, mailbox)?
            .ok_or(StoreError::NoSuchMailbox)?;
        if !self.fits_quota(account, m.body.len() as u64)? {
            return Ok(ImportOutcome::Failed(StoreError::OverQuota.to_string()));
        }
        if let Some((validity, uid)) = m.uid {
            self.reserve_uid(id, validity, uid)?;
        }
        if is_inline(m.body) {
            self.t.inline.insert(blob, m.body)?;
        }
        let rec = MessageRecord {
            blob,
            size: m.body.len() as u64,
            internal_date: m.internal_date,
            modseq: 0,
            flags: flags::normalize(m.flags),
            prefix: Vec::new(),
            save_date: None,
        };
        let uid = self.add_message(id, rec)?;
        self.t
            .account_data
            .insert((account, m.once_key), b"1".as_slice())?;
        Ok(ImportOutcome::Imported(uid))
    }
}
