import Testing
@testable import Torus
#if canImport(Glibc)
import Glibc
#endif

extension TorusTests {
    /// What a listener logs while accepting keeps failing (``AcceptPauseLog``), on its own: no
    /// socket, and time given to each event, so that a minute of pauses takes no time.
    @Suite struct AcceptPauseLogTests {
        /// The log under test and every line it returned, with the time each was returned at.
        private struct Run {
            var log = AcceptPauseLog(pause: .milliseconds(100), summaryInterval: .seconds(10))
            let start = ContinuousClock.now
            var lines: [(at: Duration, line: AcceptPauseLog.Line)] = []

            mutating func pause(_ errno: Int32, at offset: Duration) {
                if let line = log.paused(errno, at: start + offset) { lines.append((offset, line)) }
            }

            mutating func accept(at offset: Duration) {
                if log.isPaused, let line = log.accepted(at: start + offset) { lines.append((offset, line)) }
            }

            var messages: [String] { lines.map(\.line.message) }
        }

        @Test func aMinuteOfPausesLogsAWarningNamingTheErrnoASummaryEveryTenSecondsAndOneLineWhenItEnds() throws {
            var run = Run()
            for index in 0..<600 { run.pause(EMFILE, at: .milliseconds(100 * index)) }
            run.accept(at: .seconds(60))
            // 1,200 lines before (a warning per pause, and a line per resumption).
            try #require(run.lines.count == 7, "\(run.messages)")
            #expect(run.lines[0].line.level == .warning)
            #expect(run.lines[0].at == .zero)
            #expect(run.messages[0].hasPrefix("accept paused for 100 ms: EMFILE: Too many open files (errno 24)"), "\(run.messages[0])")
            for (index, entry) in run.lines[1..<6].enumerated() {
                #expect(entry.at == .seconds(10 * (index + 1)))
                #expect(entry.line == .init(level: .warning, message: "accept still paused: 100 pauses in the last 10 s (EMFILE)"))
            }
            #expect(run.lines[6].line == .init(level: .info, message: "resuming accept after 600 pauses over 1 min (EMFILE)"))
            #expect(!run.log.isPaused)
        }

        @Test func aShortEpisodeLogsOneWarningAndOneResumptionCountingEveryPause() {
            var run = Run()
            for index in 0..<25 { run.pause(ENFILE, at: .milliseconds(100 * index)) }
            run.accept(at: .milliseconds(2500))
            #expect(run.lines.map(\.line.level) == [.warning, .info])
            #expect(run.messages.first?.contains("ENFILE: Too many open files in system (errno 23)") == true, "\(run.messages)")
            #expect(run.messages.last == "resuming accept after 25 pauses over 2.5 s (ENFILE)")
        }

        @Test func theEpisodeEndsWhenTheLastPauseEndsNotWhenTheNextConnectionHappensToCome() {
            var run = Run()
            run.pause(ENOMEM, at: .zero)
            #expect(run.log.isPaused)
            // Nobody connects for half a minute after accepting works again.
            run.accept(at: .seconds(30))
            #expect(run.messages.last == "resuming accept after 1 pause over 100 ms (ENOMEM)")
        }

        @Test func connectionsAcceptedWithoutAPauseLogNothing() {
            var run = Run()
            #expect(!run.log.isPaused)
            let line = run.log.accepted(at: run.start)
            #expect(line == nil)
            run.pause(ENFILE, at: .zero)
            run.accept(at: .milliseconds(100))
            for index in 2..<100 { run.accept(at: .milliseconds(100 * index)) }
            #expect(run.lines.count == 2)
        }

        /// A process at its descriptor limit: each ended connection frees one descriptor, the
        /// next connection takes it, and accepting fails again at once. Every 100 ms a pause
        /// and an accepted connection, for 30 s: two lines, then at most one per 10 s.
        @Test func flappingBetweenPausesAndAcceptedConnectionsLogsAtMostOneLinePerIntervalAfterTheFirstTwo() throws {
            var run = Run()
            for index in 0..<300 {
                run.pause(EMFILE, at: .milliseconds(100 * index))
                run.accept(at: .milliseconds(100 * index + 100))
            }
            #expect(run.lines.count <= 2 + 3, "\(run.messages)")
            try #require(run.lines.count >= 4, "the flapping is reported, not hidden: \(run.messages)")
            #expect(run.lines[0].line.level == .warning)
            #expect(run.messages[1] == "resuming accept after 1 pause over 100 ms (EMFILE)")
            for (earlier, later) in zip(run.lines.dropFirst(), run.lines.dropFirst(2)) {
                #expect(later.at - earlier.at >= .seconds(10), "\(run.messages)")
            }
            // The summaries report the pauses since the line before, and nothing is counted twice.
            let summarised = run.messages.dropFirst(2).compactMap { message -> Int? in
                guard let range = message.firstRange(of: ": ") else { return nil }
                return Int(message[range.upperBound...].prefix { $0.isNumber })
            }
            #expect(summarised.count == run.lines.count - 2)
            #expect(1 + summarised.reduce(0, +) <= 300)
        }

        @Test func aPauseLongAfterTheLastEpisodeEndedStartsANewOneWithItsOwnWarning() {
            var run = Run()
            run.pause(EMFILE, at: .zero)
            run.accept(at: .milliseconds(100))
            run.pause(ENOMEM, at: .seconds(11))
            run.accept(at: .milliseconds(11_100))
            #expect(run.lines.map(\.line.level) == [.warning, .info, .warning, .info])
            #expect(run.messages[2].hasPrefix("accept paused for 100 ms: ENOMEM: "), "\(run.messages)")
            #expect(run.messages[3] == "resuming accept after 1 pause over 100 ms (ENOMEM)")
        }

        @Test func aSummaryCountsEachErrnoWhenSeveralCauseThePauses() {
            var run = Run()
            run.pause(EMFILE, at: .zero)
            for index in 1...100 { run.pause(index.isMultiple(of: 4) ? ENOMEM : ENFILE, at: .milliseconds(100 * index)) }
            run.accept(at: .milliseconds(10_100))
            #expect(run.messages.count == 3, "\(run.messages)")
            #expect(run.messages[1] == "accept still paused: 100 pauses in the last 10 s (75 ENFILE, 25 ENOMEM)")
            #expect(run.messages[2] == "resuming accept after 101 pauses over 10.1 s (1 EMFILE, 75 ENFILE, 25 ENOMEM)")
        }

        @Test func aPauseAfterManyPerConnectionErrorsInARowSaysHowMany() {
            var log = AcceptPauseLog(pause: .milliseconds(100))
            let line = log.paused(EPERM, inARow: 64, at: .now)
            #expect(line?.message.hasPrefix("accept paused for 100 ms after 64 failures in a row: EPERM: Operation not permitted (errno 1); ") == true,
                    "\(String(describing: line))")
        }

        @Test func durationsAreWrittenForPeople() {
            #expect(AcceptPauseLog.format(.milliseconds(100)) == "100 ms")
            #expect(AcceptPauseLog.format(.zero) == "0 ms")
            #expect(AcceptPauseLog.format(.milliseconds(2500)) == "2.5 s")
            #expect(AcceptPauseLog.format(.seconds(10)) == "10 s")
            #expect(AcceptPauseLog.format(.milliseconds(10_049)) == "10 s")
            #expect(AcceptPauseLog.format(.seconds(200)) == "3 min 20 s")
            #expect(AcceptPauseLog.format(.seconds(120)) == "2 min")
            #expect(AcceptPauseLog.name(of: ENOBUFS) == "ENOBUFS")
            #expect(AcceptPauseLog.name(of: ECONNABORTED) == "ECONNABORTED")
            #expect(AcceptPauseLog.name(of: EINVAL) == "errno 22")
        }
    }
}
