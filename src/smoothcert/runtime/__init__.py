"""Floor 2: where and how torch runs: devices and process groups
(:mod:`~smoothcert.runtime.distributed`), the seeds of every random draw
(:mod:`~smoothcert.runtime.seeding`), the CPU allocator fix (:mod:`~smoothcert.runtime.allocator`)."""
