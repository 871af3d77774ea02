package recsys.flink;

import java.nio.charset.StandardCharsets;
import java.time.DateTimeException;
import java.time.LocalDate;
import java.time.LocalTime;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;

/**
 * Parses a raw clickstream record once into the fields the checks need.
 *
 * <p>It only extracts; every rule (id pattern, event types, time bounds, price) is checked
 * by {@link EventChecks} with values generated from the Python contract. Field text follows
 * SQL's JSON_VALUE: a string's value, a number's or boolean's text, null for a missing, null,
 * object or array field. {@code tsMs} is null unless {@code ts} matches the contract's pattern
 * (group 1 local date-time, group 3 {@code Z} or {@code ±hh:mm}) and is a real date and time.
 * One streaming pass over the bytes (no tree, no String of the whole payload).
 */
final class EventParser {
    private static final JsonFactory JSON = new JsonFactory();
    static final Parsed NOT_AN_OBJECT =
            new Parsed(false, null, null, null, null, null, null, null, null, null);

    /** The extracted fields (immutable). */
    static final class Parsed {
        final boolean isObject;
        final String eventId;
        final String userId;
        final String itemId;
        final String eventType;
        final String ts;
        final Long tsMs;
        final String price;
        final Double priceValue;
        final String category;

        Parsed(boolean isObject, String eventId, String userId, String itemId, String eventType,
               String ts, Long tsMs, String price, Double priceValue, String category) {
            this.isObject = isObject;
            this.eventId = eventId;
            this.userId = userId;
            this.itemId = itemId;
            this.eventType = eventType;
            this.ts = ts;
            this.tsMs = tsMs;
            this.price = price;
            this.priceValue = priceValue;
            this.category = category;
        }
    }

    private final Pattern tsPattern;

    EventParser(Pattern tsPattern) {
        this.tsPattern = tsPattern;
    }

    Parsed parse(byte[] payload) {
        if (payload == null) {
            return NOT_AN_OBJECT;
        }
        try (JsonParser p = JSON.createParser(payload)) {
            return parse(p);
        } catch (Exception e) {
            // not JSON, or not UTF-8: parse the text as the SQL job did (invalid bytes become
            // U+FFFD), so only what is not JSON as text is rejected
            try (JsonParser p = JSON.createParser(new String(payload, StandardCharsets.UTF_8))) {
                return parse(p);
            } catch (Exception again) {
                return NOT_AN_OBJECT;
            }
        }
    }

    private Parsed parse(JsonParser p) throws java.io.IOException {
        String eventId = null, userId = null, itemId = null, eventType = null, ts = null;
        String price = null, category = null;
        Double priceValue = null;
        if (p.nextToken() != JsonToken.START_OBJECT) {
            return NOT_AN_OBJECT;
        }
        for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
            String name = p.currentName();
            JsonToken v = p.nextToken();
            if (v == JsonToken.START_OBJECT && "context".equals(name)) {
                category = categoryOf(p);
                continue;
            }
            if (v == JsonToken.START_OBJECT || v == JsonToken.START_ARRAY) {
                p.skipChildren();
                v = null;
            }
            String text = v == null || v == JsonToken.VALUE_NULL ? null : p.getText();
            switch (name) {
                case "event_id": eventId = text; break;
                case "user_id": userId = text; break;
                case "item_id": itemId = text; break;
                case "event_type": eventType = text; break;
                case "ts": ts = text; break;
                case "price":
                    price = text;
                    priceValue = number(v, p, text);
                    break;
                default: break;
            }
        }
        if (p.nextToken() != null) {
            return NOT_AN_OBJECT; // trailing content: not one JSON object
        }
        return new Parsed(true, eventId, userId, itemId, eventType, ts, epochMillis(ts), price,
                priceValue, category);
    }

    private static String categoryOf(JsonParser p) throws java.io.IOException {
        String category = null;
        for (JsonToken t = p.nextToken(); t != JsonToken.END_OBJECT; t = p.nextToken()) {
            String name = p.currentName();
            JsonToken v = p.nextToken();
            if (v == JsonToken.START_OBJECT || v == JsonToken.START_ARRAY) {
                p.skipChildren();
            } else if ("category".equals(name) && v != JsonToken.VALUE_NULL) {
                category = p.getText();
            }
        }
        return category;
    }

    /** A finite number, from a JSON number or numeric text (like TRY_CAST); else null. */
    private static Double number(JsonToken v, JsonParser p, String text) throws java.io.IOException {
        double value;
        if (v == JsonToken.VALUE_NUMBER_INT || v == JsonToken.VALUE_NUMBER_FLOAT) {
            value = p.getDoubleValue();
        } else if (v == JsonToken.VALUE_STRING) {
            try {
                value = Double.parseDouble(text.trim());
            } catch (NumberFormatException e) {
                return null;
            }
        } else {
            return null;
        }
        return Double.isFinite(value) ? value : null;
    }

    Long epochMillis(String ts) {
        if (ts == null) {
            return null;
        }
        Matcher m = tsPattern.matcher(ts);
        if (!m.matches()) {
            return null;
        }
        String local = m.group(1);
        String zone = m.group(3);
        try {
            long day = LocalDate.of(Integer.parseInt(local.substring(0, 4)),
                    Integer.parseInt(local.substring(5, 7)),
                    Integer.parseInt(local.substring(8, 10))).toEpochDay();
            long second = LocalTime.of(Integer.parseInt(local.substring(11, 13)),
                    Integer.parseInt(local.substring(14, 16)),
                    Integer.parseInt(local.substring(17, 19))).toSecondOfDay();
            long millis = 0;
            if (local.length() > 20) { // ".f…": milliseconds from the first three digits
                String fraction = (local.substring(20) + "00").substring(0, 3);
                millis = Integer.parseInt(fraction);
            }
            long epochMs = (day * 86_400L + second) * 1000L + millis;
            if ("Z".equals(zone)) {
                return epochMs;
            }
            int minutes = Integer.parseInt(zone.substring(1, 3)) * 60
                    + Integer.parseInt(zone.substring(4, 6));
            return epochMs - (zone.charAt(0) == '-' ? -minutes : minutes) * 60_000L;
        } catch (DateTimeException | NumberFormatException e) {
            return null;
        }
    }
}
