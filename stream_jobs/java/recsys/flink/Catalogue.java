package recsys.flink;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Item categories from the catalogue snapshot the job was started with (lines
 * {@code item_id TAB category}; no file: no catalogue). Null for an item the snapshot does
 * not know. The file is read again when it changes (checked at most every
 * {@code checkEveryMs}), so new items are picked up without restarting the job.
 */
final class Catalogue {
    private final Path path;
    private final long checkEveryMs;
    private long nextCheck;
    private long loadedModified = Long.MIN_VALUE;
    private Map<String, String> categories = new HashMap<>();

    Catalogue(String file, long checkEveryMs) {
        this.path = file == null || file.isEmpty() ? null : Path.of(file);
        this.checkEveryMs = checkEveryMs;
        reloadIfChanged();
    }

    String categoryOf(String itemId) {
        if (path != null && System.currentTimeMillis() >= nextCheck) {
            reloadIfChanged();
        }
        return itemId == null ? null : categories.get(itemId);
    }

    private void reloadIfChanged() {
        if (path == null) {
            return;
        }
        nextCheck = System.currentTimeMillis() + checkEveryMs;
        try {
            long modified = Files.getLastModifiedTime(path).toMillis();
            if (modified == loadedModified) {
                return;
            }
            List<String> lines = Files.readAllLines(path, StandardCharsets.UTF_8);
            Map<String, String> loaded = new HashMap<>(lines.size() * 2);
            for (String line : lines) {
                int tab = line.indexOf('\t');
                if (tab > 0 && tab < line.length() - 1) {
                    loaded.put(line.substring(0, tab), line.substring(tab + 1));
                }
            }
            categories = loaded;
            loadedModified = modified;
        } catch (IOException e) {
            if (loadedModified == Long.MIN_VALUE) {
                throw new UncheckedIOException("cannot read the catalogue " + path, e);
            }
            // keep the snapshot we have; the next check tries again
        }
    }
}
