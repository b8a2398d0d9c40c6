import Crypto
import CryptoExtras

/// The SCRAM-SHA-256 functions of RFC 5802 section 3 with RFC 7677's hash, and the
/// attribute syntax of its messages. Pure functions, safe from any thread.
enum SCRAM {
    /// `SaltedPassword = Hi(password, salt, i)`, which is PBKDF2-HMAC-SHA256 with 32 bytes
    /// of output; nil only if the crypto library fails.
    static func saltedPassword(_ password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8]? {
        // SCRAM's 4096 rounds are below the checked API's floor; RFC 7677 sets the number.
        guard
            let key = try? KDF.Insecure.PBKDF2.deriveKey(
                from: password, salt: salt, using: .sha256, outputByteCount: 32,
                unsafeUncheckedRounds: iterations)
        else { return nil }
        return key.withUnsafeBytes { Array($0) }
    }

    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    static func clientKey(saltedPassword: [UInt8]) -> [UInt8] {
        hmac(key: saltedPassword, Array("Client Key".utf8))
    }

    static func storedKey(saltedPassword: [UInt8]) -> [UInt8] {
        sha256(clientKey(saltedPassword: saltedPassword))
    }

    static func serverKey(saltedPassword: [UInt8]) -> [UInt8] {
        hmac(key: saltedPassword, Array("Server Key".utf8))
    }

    static func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
        zip(a, b).map { $0 ^ $1 }
    }

    /// The client's proof for `authMessage`: `ClientKey XOR HMAC(StoredKey, AuthMessage)`.
    /// The server never needs it; tests and clients do.
    static func clientProof(saltedPassword: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        let clientKey = clientKey(saltedPassword: saltedPassword)
        return xor(clientKey, hmac(key: sha256(clientKey), authMessage))
    }

    // MARK: Message syntax

    /// `printable` of RFC 5802: 0x21...0x7E except `,`.
    static func isPrintable(_ byte: UInt8) -> Bool {
        byte >= 0x21 && byte <= 0x7E && byte != UInt8(ascii: ",")
    }

    /// Splits a message into its comma-separated attributes (empty ones kept).
    static func attributes(_ message: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        message.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
    }

    /// The value of `attribute` when it reads `<name>=<value>`, else nil.
    static func value(of attribute: ArraySlice<UInt8>, named name: Character) -> ArraySlice<UInt8>? {
        guard let letter = name.asciiValue, attribute.count >= 2, attribute.first == letter,
            attribute[attribute.startIndex + 1] == UInt8(ascii: "=")
        else { return nil }
        return attribute.dropFirst(2)
    }

    /// Decodes a `saslname`: `=2C` is `,` and `=3D` is `=`; any other `=` and any byte
    /// outside printable ASCII are refused (SASLprep is not implemented, and is the identity
    /// on printable ASCII). Nil when not valid or empty.
    static func decodeSASLName(_ bytes: ArraySlice<UInt8>) -> String? {
        var output: [UInt8] = []
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "=") {
                guard bytes.endIndex - index >= 3 else { return nil }
                let escape = (bytes[index + 1], bytes[index + 2])
                if escape == (UInt8(ascii: "2"), UInt8(ascii: "C")) {
                    output.append(UInt8(ascii: ","))
                } else if escape == (UInt8(ascii: "3"), UInt8(ascii: "D")) {
                    output.append(UInt8(ascii: "="))
                } else {
                    return nil
                }
                index += 3
                continue
            }
            guard byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: ",") else { return nil }
            output.append(byte)
            index += 1
        }
        guard !output.isEmpty else { return nil }
        return String(decoding: output, as: UTF8.self)
    }

    /// Encodes a user name as a `saslname` (the inverse of ``decodeSASLName(_:)``).
    static func encodeSASLName(_ name: String) -> String {
        var output = ""
        for character in name.unicodeScalars {
            switch character {
            case ",": output += "=2C"
            case "=": output += "=3D"
            default: output.unicodeScalars.append(character)
            }
        }
        return output
    }
}
