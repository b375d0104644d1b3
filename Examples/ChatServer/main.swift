// chat-server: a line-based chat room.
//
//   swift run -c release chat-server [--host 127.0.0.1] [--port 7001] [--threads 1] [--queue-bytes 1048576]
//
// Connect with `nc 127.0.0.1 7001`. Each client starts as guestN; `/nick NAME` renames it,
// `/quit` leaves. Every line a client sends goes at once to every other client as
// `NAME: line`; joins, leaves and renames are announced as `* ...` lines.
//
// Slow clients: what the room says to a client is queued on its connection (`send`, into
// the connection's outbox), at most --queue-bytes bytes (1 MiB). A client whose queue would
// overflow when a new line arrives (it has stopped reading, and its socket buffers are full
// too) is dropped: its connection is closed and the others see `* NAME was dropped: too
// slow`. A send the client does not take within 10 s fails, and the client is dropped so at
// the next line. Nobody else waits for a slow client.
import ExampleProtocols
import ExampleServing
import Torus

#if canImport(Glibc)
import Glibc
#endif

func main() async -> Int32 {
    await ExampleServer.run(name: "chat-server") {
        let options = try ExampleOptions(
            CommandLine.arguments.dropFirst(), accepting: ["host", "port", "threads", "queue-bytes"],
            usage: "usage: chat-server [--host ADDRESS] [--port PORT] [--threads N] [--queue-bytes N]")
        let queueCapacity = try options.integer("queue-bytes", default: 1024 * 1024)
        var connectionOptions = ConnectionOptions()
        // The queue's bound is the outbox's high-water mark, so a send under it never waits.
        connectionOptions.sendQueueHighWaterMark = queueCapacity
        connectionOptions.writeTimeout = .seconds(10)
        let listeners = try await ExampleServer.bind(
            name: "chat-server", options: options, defaultPort: 7001, connectionOptions: connectionOptions)
        let room = ChatRoom(on: listeners[0].eventLoop, queueCapacity: queueCapacity)
        try await ExampleServer.serve(listeners) { connection in
            await ChatClientHandler.serve(connection, room: room)
        }
    }
}

exit(await main())
