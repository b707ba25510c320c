package workflow

// DisableCopy makes s import with ON CONFLICT statements only, as after a
// COPY met a unique violation.
func DisableCopy(s *Service) { s.copyOff.Store(true) }
