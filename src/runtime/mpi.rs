//! The [`Collective`] of a job started by an MPI launcher (`mpirun`, `mpiexec`, Slurm's
//! `srun`), on the system's MPI library through the `mpi` crate (cargo feature `mpi`).

use super::distributed::Collective;
use mpi::Threading;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};

/// `MPI_COMM_WORLD` of an initialized MPI; finalized when dropped.
pub struct World {
    // Dropped after `world`: the universe's drop finalizes MPI.
    world: SimpleCommunicator,
    _universe: Universe,
}

impl World {
    /// Initializes MPI when an MPI launcher started this process (None otherwise). The calls
    /// are made from one thread at a time (the thread that runs the training loop, which need
    /// not be the process's first), so MPI is asked for `MPI_THREAD_SERIALIZED`.
    pub fn init() -> Result<Option<World>, String> {
        if super::distributed::launcher_size().is_none() {
            return Ok(None);
        }
        let (universe, threading) = mpi::initialize_with_threading(Threading::Serialized)
            .ok_or("MPI was initialized already")?;
        if threading < Threading::Serialized {
            return Err(format!(
                "the MPI library offers only {threading:?} threading; nnlc needs Serialized"
            ));
        }
        Ok(Some(World {
            world: universe.world(),
            _universe: universe,
        }))
    }

    /// Ends every process of the job (`MPI_Abort`) with `code`.
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

impl Collective for World {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_gather(&self, local: &[u32]) -> Result<Vec<u32>, String> {
        let mut all = vec![0u32; local.len() * self.size()];
        self.world.all_gather_into(local, &mut all[..]);
        Ok(all)
    }

    fn broadcast(&self, bytes: &mut [u8]) -> Result<(), String> {
        self.world.process_at_rank(0).broadcast_into(bytes);
        Ok(())
    }
}
