//! The `engine-step` thread: takes the handles' commands and drives an [`EngineCore`] until
//! shutdown, or until every handle is gone and nothing is live.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError};

use kernels::Backend;

use super::Command;
use super::handle::Shared;
use super::step::EngineCore;
use crate::lifecycle::{AbortCause, Finish, RequestFailure};

/// Runs `core` on the commands of `commands`. A panic in a step stops the engine but still
/// finishes every live request (as failed).
pub(super) fn run<B: Backend>(
    mut core: EngineCore<'_, B>,
    shared: &Arc<Shared>,
    commands: &Receiver<Command>,
) {
    let mut disconnected = false;
    let served = std::panic::catch_unwind(AssertUnwindSafe(|| {
        while take_commands(&mut core, commands, &mut disconnected) {
            if core.has_unfinished() {
                core.step();
            }
        }
    }));
    let finish = match served {
        Ok(()) => Finish::Aborted(AbortCause::Shutdown),
        Err(_) => {
            tracing::error!("a step panicked; stopping the engine");
            shared
                .failed
                .store(true, std::sync::atomic::Ordering::Release);
            Finish::Failed(RequestFailure::EngineStopped)
        }
    };
    // Refuse new requests, then finish everything live or in flight.
    shared.gate().stopped = true;
    while let Ok(c) = commands.try_recv() {
        if let Command::Submit(sub) = c {
            core.add(*sub);
        }
    }
    core.stop(&finish);
    shared.stopped.send_replace(true);
}

/// Applies pending commands, blocking while idle; false when the loop must end.
fn take_commands<B: Backend>(
    core: &mut EngineCore<'_, B>,
    commands: &Receiver<Command>,
    disconnected: &mut bool,
) -> bool {
    if !core.has_unfinished() {
        if *disconnected {
            return false;
        }
        let Ok(c) = commands.recv() else {
            return false;
        };
        if !command(core, c) {
            return false;
        }
    }
    loop {
        match commands.try_recv() {
            Ok(c) => {
                if !command(core, c) {
                    return false;
                }
            }
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => {
                *disconnected = true;
                return true;
            }
        }
    }
}

/// Applies one command; false on shutdown.
fn command<B: Backend>(core: &mut EngineCore<'_, B>, c: Command) -> bool {
    match c {
        Command::Submit(sub) => core.add(*sub),
        Command::Abort(id, cause) => core.abort(id, cause),
        Command::Shutdown => return false,
    }
    true
}
