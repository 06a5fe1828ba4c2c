//! The [`Store`](crate::store::Store) implementation of a store made of a
//! [`WriteBehind`](super::WriteBehind).

/// Implements [`Store`](super::Store) for a struct whose field `$field` is a
/// [`WriteBehind`]: the two stores differ only in their backend.
macro_rules! store_by_write_behind {
    ($store:ty, $field:ident) => {
        impl $crate::store::Store for $store {
            fn capacity(&self) -> std::sync::Arc<$crate::store::StoreCapacity> {
                self.$field.capacity()
            }

            fn queue(
                &self,
                recipient_id: &RecipientId,
            ) -> Result<Option<$crate::store::QueueRecord>, $crate::store::StoreError> {
                self.$field.queue(recipient_id)
            }

            fn queue_by_sender(
                &self,
                sender_id: &passage_wire::SenderId,
            ) -> Result<Option<$crate::store::QueueRecord>, $crate::store::StoreError> {
                self.$field.queue_by_sender(sender_id)
            }

            fn queue_keys(
                &self,
                recipient_id: &RecipientId,
            ) -> Result<Option<$crate::store::QueueKeys>, $crate::store::StoreError> {
                self.$field.queue_keys(recipient_id)
            }

            fn queue_keys_by_sender(
                &self,
                sender_id: &passage_wire::SenderId,
            ) -> Result<Option<$crate::store::QueueKeys>, $crate::store::StoreError> {
                self.$field.queue_keys_by_sender(sender_id)
            }

            fn first_message(
                &self,
                recipient_id: &RecipientId,
            ) -> Result<Option<$crate::store::StoredMessage>, $crate::store::StoreError> {
                self.$field.first_message(recipient_id)
            }

            fn message_after(
                &self,
                recipient_id: &RecipientId,
                msg_id: &passage_wire::MsgId,
            ) -> Result<Option<$crate::store::StoredMessage>, $crate::store::StoreError> {
                self.$field.message_after(recipient_id, msg_id)
            }

            fn messages_from(
                &self,
                recipient_id: &RecipientId,
                from: u64,
                max: usize,
            ) -> Result<
                Vec<(u64, std::sync::Arc<$crate::store::StoredMessage>)>,
                $crate::store::StoreError,
            > {
                self.$field.messages_from(recipient_id, from, max)
            }

            fn has_message(
                &self,
                recipient_id: &RecipientId,
                msg_id: &passage_wire::MsgId,
            ) -> Result<bool, $crate::store::StoreError> {
                self.$field.has_message(recipient_id, msg_id)
            }

            fn message_count(
                &self,
                recipient_id: &RecipientId,
            ) -> Result<u64, $crate::store::StoreError> {
                self.$field.message_count(recipient_id)
            }

            fn stats(&self) -> Result<$crate::store::StoreStats, $crate::store::StoreError> {
                self.$field.stats()
            }

            fn apply(&self, ops: Vec<$crate::store::WriteOp>) -> $crate::store::Applied {
                self.$field.apply(ops)
            }

            fn persist(&self, held_through: u64) -> $crate::store::Persisted {
                self.$field.persist(held_through)
            }
        }
    };
}
pub(crate) use store_by_write_behind;
