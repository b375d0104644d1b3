import Testing

/// The root of every Torus test.
///
/// All suites are nested here (each in its own file, as `extension TorusTests { @Suite … }`)
/// and run one after another: the descriptor-leak check (``NoDescriptorLeaks``) counts the
/// whole process's open descriptors, which only means something when no other suite opens or
/// closes sockets at the same time. `.serialized` applies to everything nested below.
@Suite(.serialized)
struct TorusTests {}
