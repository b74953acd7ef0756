-- Device names, encrypted by the devices (store.DeviceNamer): opaque.
ALTER TABLE devices ADD COLUMN name BLOB;
