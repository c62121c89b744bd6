//! mikro-emulator: placeholder, filled in by the emulator work.
