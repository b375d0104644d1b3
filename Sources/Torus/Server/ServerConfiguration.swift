public import CoreMetrics

extension Server {
    /// Limits, timeouts and shutdown behaviour of a ``Server``.
    public struct Configuration: Sendable {
        /// Connections served at once; nil for no limit but the process's descriptors. At the
        /// limit the server stops accepting, and new connections wait in the kernel's backlog
        /// until a handler finishes.
        public var maxConnections: Int?
        /// A connection with nothing received and nothing sent for this long is closed; the
        /// handler's pending read or write ends with ``TorusError/Kind/timedOut``. nil keeps
        /// idle connections open.
        ///
        /// What the kernel moves counts too: a TCP peer still acknowledging bytes from the
        /// send buffer, or a large write it takes piece by piece, keeps the connection open
        /// however long it takes. A peer that has taken everything and sends nothing is idle,
        /// even if its application reads slowly from its own kernel's buffer.
        public var idleTimeout: Duration?
        /// The timeout of every read that passes none of its own (see
        /// ``Connection/setReadTimeout(_:)``); nil for none.
        public var readTimeout: Duration?
        /// The timeout of every write that passes none of its own, and of each `sendmsg` of
        /// queued sends (see ``Connection/setWriteTimeout(_:)``); nil for none.
        public var writeTimeout: Duration?
        /// How long running handlers get to finish after a graceful shutdown begins, before
        /// they are cancelled. Their reads return end of stream meanwhile (see
        /// ``Connection/isDraining``), so handlers that read until the end usually finish
        /// well before.
        public var shutdownGracePeriod: Duration
        /// Where the server's metrics go; nil for the factory bootstrapped with
        /// `MetricsSystem`.
        public var metricsFactory: (any MetricsFactory)?

        /// Creates a configuration; every parameter defaults to no limit, except a grace
        /// period of 30 seconds.
        public init(
            maxConnections: Int? = nil,
            idleTimeout: Duration? = nil,
            readTimeout: Duration? = nil,
            writeTimeout: Duration? = nil,
            shutdownGracePeriod: Duration = .seconds(30),
            metricsFactory: (any MetricsFactory)? = nil
        ) {
            precondition(maxConnections.map { $0 > 0 } ?? true, "maxConnections must be positive")
            self.maxConnections = maxConnections
            self.idleTimeout = idleTimeout
            self.readTimeout = readTimeout
            self.writeTimeout = writeTimeout
            self.shutdownGracePeriod = shutdownGracePeriod
            self.metricsFactory = metricsFactory
        }
    }
}
