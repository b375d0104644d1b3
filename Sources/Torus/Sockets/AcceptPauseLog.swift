#if canImport(Glibc)
import Glibc
#endif

/// What a listener logs while accepting keeps failing for want of descriptors or memory
/// (`EMFILE`, `ENFILE`, `ENOMEM`, `ENOBUFS`): a few lines per episode, not two per pause.
///
/// The listener pauses after every such failure (for ``Listener/Options/resourceExhaustionPause``,
/// 100 ms by default) and tries again, so a process out of descriptors for a minute would log
/// 1,200 lines. Instead:
///
/// - The first pause of an episode logs a warning that names the errno.
/// - Later pauses are counted silently, and summarised at most once per `summaryInterval`
///   (a warning: how many pauses since the last line, and which errnos).
/// - The first connection accepted after a pause ends the episode with one line (info): how
///   many pauses, over how long.
/// - Accepting can flap (a descriptor frees, one connection is accepted, the table is full
///   again): pauses within `summaryInterval` of the end of an episode reopen it silently,
///   and only a summary, at most once per interval, reports them.
///
/// So an episode of any length logs at most two lines plus one per `summaryInterval`. The
/// listener's pause counter (`torus.listener.accept.pauses`) still counts every pause.
///
/// A value type without sockets or a clock of its own: each event is given the time it
/// happened, and the line to log (if any) is returned, so that tests can drive it.
struct AcceptPauseLog: Sendable {
    /// A line to log.
    struct Line: Equatable, Sendable {
        /// How severe it is: pauses are warnings, the end of an episode is information.
        enum Level: Equatable, Sendable {
            case warning, info
        }

        let level: Level
        let message: String
    }

    /// How long each pause lasts (named in the first line, and counted in an episode's length).
    let pause: Duration
    /// The shortest time between two lines of one episode, after its first two.
    let summaryInterval: Duration

    /// The pauses of one episode.
    private struct Episode {
        /// When its first pause began.
        var start: ContinuousClock.Instant
        /// When its latest pause began.
        var lastPause: ContinuousClock.Instant
        /// When its latest line was logged.
        var lastLine: ContinuousClock.Instant
        /// Every pause, by errno.
        var total = ErrnoTally()
        /// The pauses no line has reported yet, by errno.
        var unreported = ErrnoTally()
        /// No connection has been accepted since the latest pause.
        var isPaused = true
        /// When a connection was last accepted after a pause (nil until one was): the
        /// episode is over once no pause follows within `summaryInterval`.
        var resumed: ContinuousClock.Instant?
    }

    private var episode: Episode?

    /// A log for a listener that pauses for `pause` after each failure, summarising pauses at
    /// most once per `summaryInterval`.
    init(pause: Duration, summaryInterval: Duration = .seconds(10)) {
        self.pause = pause
        self.summaryInterval = summaryInterval
    }

    /// Whether accepting has paused since the last accepted connection: only then does
    /// ``accepted(at:)`` have anything to do (so a listener need not read the clock for every
    /// connection).
    var isPaused: Bool { episode?.isPaused ?? false }

    /// Accepting failed with `errno` at `now` and pauses: at once for running out of
    /// descriptors or memory, after `count` failures in a row for an error about one
    /// connection that keeps coming. Returns the line to log, if any.
    mutating func paused(_ errno: Int32, inARow count: Int = 1, at now: ContinuousClock.Instant) -> Line? {
        guard var episode, episode.isPaused || episode.resumed.map({ now - $0 < summaryInterval }) == true else {
            var episode = Episode(start: now, lastPause: now, lastLine: now)
            episode.total.add(errno)
            self.episode = episode
            let cause = count > 1 ? " after \(count) failures in a row" : ""
            return Line(level: .warning, message: "accept paused for \(Self.format(pause))\(cause): \(Self.describe(errno)); "
                + "retrying every \(Self.format(pause)) while it lasts, with a summary at most every \(Self.format(summaryInterval))")
        }
        episode.total.add(errno)
        episode.unreported.add(errno)
        episode.lastPause = now
        episode.isPaused = true
        var line: Line?
        if now - episode.lastLine >= summaryInterval {
            line = Line(level: .warning, message: "accept still paused: \(Self.pauses(episode.unreported.count)) in the last "
                + "\(Self.format(now - episode.lastLine)) (\(episode.unreported))")
            episode.lastLine = now
            episode.unreported = ErrnoTally()
        }
        self.episode = episode
        return line
    }

    /// A connection was accepted at `now`. Returns the line to log, if any: the end of the
    /// episode, the first time since it began; a summary of the pauses since the last line if
    /// it has reopened and the last line is `summaryInterval` old.
    mutating func accepted(at now: ContinuousClock.Instant) -> Line? {
        guard var episode, episode.isPaused else { return nil }
        defer { self.episode = episode }
        episode.isPaused = false
        let wasResumed = episode.resumed != nil
        episode.resumed = now
        if !wasResumed {
            // Accepting worked again at the end of the last pause, not when the next
            // connection happened to come.
            let length = min(now, episode.lastPause + pause) - episode.start
            episode.lastLine = now
            episode.unreported = ErrnoTally()
            return Line(level: .info, message: "resuming accept after \(Self.pauses(episode.total.count)) over "
                + "\(Self.format(length)) (\(episode.total))")
        }
        guard now - episode.lastLine >= summaryInterval, episode.unreported.count > 0 else { return nil }
        let line = Line(level: .info, message: "resuming accept: \(Self.pauses(episode.unreported.count)) in the last "
            + "\(Self.format(now - episode.lastLine)) (\(episode.unreported))")
        episode.lastLine = now
        episode.unreported = ErrnoTally()
        return line
    }

    /// "1 pause", "25 pauses".
    private static func pauses(_ count: Int) -> String {
        count == 1 ? "1 pause" : "\(count) pauses"
    }

    /// The errno's name and description: `ENFILE: Too many open files in system (errno 23)`.
    private static func describe(_ errno: Int32) -> String {
        "\(name(of: errno)): \(TorusError.describe(errno: errno))"
    }

    /// The symbolic name of the errnos accepting pauses for; `errno N` for any other.
    static func name(of errno: Int32) -> String {
        switch errno {
        case EMFILE: "EMFILE"
        case ENFILE: "ENFILE"
        case ENOMEM: "ENOMEM"
        case ENOBUFS: "ENOBUFS"
        case ECONNABORTED: "ECONNABORTED"
        case EPERM: "EPERM"
        case EPROTO: "EPROTO"
        case EINTR: "EINTR"
        case ENETDOWN: "ENETDOWN"
        case ENETUNREACH: "ENETUNREACH"
        case ENONET: "ENONET"
        case EHOSTUNREACH: "EHOSTUNREACH"
        case EOPNOTSUPP: "EOPNOTSUPP"
        case ETIMEDOUT: "ETIMEDOUT"
        default: "errno \(errno)"
        }
    }

    /// A duration for people: `100 ms`, `2.5 s`, `10 s`, `3 min 20 s`.
    static func format(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let milliseconds = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        if milliseconds < 1000 { return "\(max(0, milliseconds)) ms" }
        if milliseconds < 60_000 {
            let tenths = (milliseconds + 50) / 100
            return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
        }
        let wholeSeconds = (milliseconds + 500) / 1000
        return wholeSeconds % 60 == 0 ? "\(wholeSeconds / 60) min" : "\(wholeSeconds / 60) min \(wholeSeconds % 60) s"
    }

    /// Pauses counted by errno, in the order the errnos first came.
    private struct ErrnoTally: CustomStringConvertible {
        private var counts: [(errno: Int32, count: Int)] = []

        /// Every pause counted.
        private(set) var count = 0

        mutating func add(_ errno: Int32) {
            count += 1
            if let index = counts.firstIndex(where: { $0.errno == errno }) {
                counts[index].count += 1
            } else {
                counts.append((errno, 1))
            }
        }

        /// `ENFILE` when one errno explains every pause, else `40 EMFILE, 2 ENOMEM`.
        var description: String {
            if counts.count == 1 { return AcceptPauseLog.name(of: counts[0].errno) }
            return counts.map { "\($0.count) \(AcceptPauseLog.name(of: $0.errno))" }.joined(separator: ", ")
        }
    }
}
