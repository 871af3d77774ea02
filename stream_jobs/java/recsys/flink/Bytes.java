package recsys.flink;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** A growable byte buffer, reused row after row by one encoder (one thread). */
final class Bytes {
    byte[] data = new byte[256];
    int length;

    void reset() {
        length = 0;
    }

    private void room(int more) {
        if (length + more > data.length) {
            data = Arrays.copyOf(data, Math.max(data.length * 2, length + more));
        }
    }

    void write(int b) {
        room(1);
        data[length++] = (byte) b;
    }

    void write(byte[] b) {
        write(b, 0, b.length);
    }

    void write(byte[] b, int offset, int n) {
        room(n);
        System.arraycopy(b, offset, data, length, n);
        length += n;
    }

    void write(Bytes other) {
        write(other.data, 0, other.length);
    }

    /** UTF-8 of {@code s}; ASCII is copied char by char, without an intermediate array. */
    void writeUtf8(String s) {
        int n = s.length();
        room(n);
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            if (c >= 0x80) {
                length -= i;
                write(s.getBytes(StandardCharsets.UTF_8));
                return;
            }
            data[length++] = (byte) c;
        }
    }

    void writeDecimal(long v) {
        if (v < 0) {
            if (v == Long.MIN_VALUE) {
                writeUtf8(Long.toString(v));
                return;
            }
            write('-');
            v = -v;
        }
        if (v >= 10) {
            writeDecimal(v / 10);
        }
        write((int) ('0' + v % 10));
    }

    void writeVarint(long v) {
        while ((v & ~0x7FL) != 0) {
            write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        write((int) v);
    }

    void writeIntLE(int v) {
        for (int i = 0; i < 4; i++) {
            write((v >>> (8 * i)) & 0xFF);
        }
    }

    void writeLongLE(long v) {
        for (int i = 0; i < 8; i++) {
            write((int) ((v >>> (8 * i)) & 0xFF));
        }
    }

    byte[] toArray() {
        return Arrays.copyOf(data, length);
    }
}
