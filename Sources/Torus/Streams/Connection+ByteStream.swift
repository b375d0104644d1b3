/// A connection is the byte stream every framing helper reads: ``BufferedReader``,
/// ``ByteStream/lines(maxLength:)``, ``ByteStream/frames(_:)``.
extension Connection: ByteStream {}
