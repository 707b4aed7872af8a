//! outbox.rs: the outbox, in the order a batch goes through it: [`batch`] turns staged items
//! into batches (grouping, batch ids, the dry-run preview), [`send`] delivers pending batches
//! (send, back off, requeue, redeliver), [`follow`] follows the runs they started. What a
//! delivery is, typed, lives in [`crate::delivery`].

pub mod batch;
pub mod follow;
pub mod send;

pub use batch::{
    Batching, batch_id, form_batches, group_staged, held_until, new_delivery, preview,
};
pub use follow::{Following, follow_runs};
pub use send::{DeliveryReport, RedeliverError, deliver_due, redeliver, requeue_failed};
