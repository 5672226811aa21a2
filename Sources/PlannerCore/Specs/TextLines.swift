/// The lines of a text file whose lines end in LF or CRLF, without their line ends.
///
/// Split on the Unicode scalars: a Swift `String` holds "\r\n" as one `Character`, which is not
/// "\n", so splitting on characters would read a CRLF file as one line.
func textLines(_ text: String) -> [String] {
    text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        .map { String(String.UnicodeScalarView($0.last == "\r" ? $0.dropLast() : $0[...])) }
}
