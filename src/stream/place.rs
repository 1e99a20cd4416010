//! Where a stream's reader is ([`Place`]) and the state of its watchdog ([`Watchdog`]): the
//! part of the reader hand-over that the shared state holds. The hand-over itself (park,
//! unpark, the watchdog, the consumer's turn at the socket) is `stream::driver`.
//!
//! A parked reader is held here as an [`Opaque`] box that only the driver opens, so that
//! the shared state does not depend on the reader, which writes to it: the stream's files
//! import one another in one direction (docs/architecture.md).

use std::any::Any;

/// Where a stream's reader is (see `stream::driver`).
pub(crate) enum Place {
    /// The query is starting on the calling thread (`execute` has not returned).
    Caller,
    /// Waiting in the stream for its consumer to read with it (a `driver::Parked`).
    Parked(Opaque),
    /// The consumer took it and reads the socket on its own thread.
    ConsumerReading,
    /// A runtime task runs it (or is being given it).
    Task {
        /// It may be parked again for the consumer (a plain socket started on the calling
        /// thread, with an interrupt descriptor to spare).
        may_park: bool,
    },
    /// The stream ended: no reader any more.
    Ended,
}

/// The watchdog of a parked reader (see `driver::watchdog_task`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Watchdog {
    /// None runs.
    Off,
    /// One runs, waking every take-over delay at most.
    Running,
    /// One runs but sleeps longer than the take-over delay (the consumer was waiting on a
    /// slow socket): a consumer that receives rows wakes it (`Shared::watchdog_wake`) so
    /// that the delay holds again.
    BackedOff,
}

/// A parked reader as the shared state holds it: a box of a type only the driver names.
/// Opening it with another type is a bug of the driver (a panic, caught at the C boundary).
pub(crate) struct Opaque(Box<dyn Any + Send>);

impl Opaque {
    pub(crate) fn new<T: Any + Send>(value: T) -> Opaque {
        Opaque(Box::new(value))
    }

    /// The value, by move.
    pub(crate) fn open<T: Any>(self) -> T {
        *self
            .0
            .downcast::<T>()
            .expect("a parked reader is opened as the type it was parked as")
    }

    pub(crate) fn get<T: Any>(&self) -> &T {
        self.0
            .downcast_ref::<T>()
            .expect("a parked reader is read as the type it was parked as")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_opaque_box_opens_as_what_was_put_in() {
        let o = Opaque::new((7u32, String::from("reader")));
        assert_eq!(o.get::<(u32, String)>().0, 7);
        assert_eq!(o.open::<(u32, String)>().1, "reader");
    }

    #[test]
    #[should_panic(expected = "opened as the type it was parked as")]
    fn an_opaque_box_refuses_another_type() {
        Opaque::new(1u8).open::<u16>();
    }
}
