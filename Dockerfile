# Tollgate in a container: docker build -t tollgate . && docker run -p 5080:5080 -v tollgate-data:/srv/tollgate/data tollgate
# Provider keys as environment variables (-e DEEPSEEK_API_KEY=...) or in /srv/tollgate/.env; a config file at
# /srv/tollgate/tollgate.json is read when present. See docs/deployment.md.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files alone, so the layer survives source edits.
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Tollgate.Core/Tollgate.Core.csproj src/Tollgate.Core/
COPY src/Tollgate.Storage/Tollgate.Storage.csproj src/Tollgate.Storage/
COPY src/Tollgate.Server/Tollgate.Server.csproj src/Tollgate.Server/
RUN dotnet restore src/Tollgate.Server/Tollgate.Server.csproj
COPY src/ src/
RUN dotnet publish src/Tollgate.Server/Tollgate.Server.csproj -c Release --no-restore -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
# The working directory is where tollgate looks for tollgate.json and .env, and keeps ./data (the SQLite database).
WORKDIR /srv/tollgate
RUN mkdir -p /srv/tollgate/data && chown "$APP_UID" /srv/tollgate/data
COPY --from=build /app /opt/tollgate
ENV ASPNETCORE_URLS=http://+:5080
EXPOSE 5080
VOLUME /srv/tollgate/data
# The image's unprivileged user.
USER $APP_UID
ENTRYPOINT ["/opt/tollgate/tollgate"]
CMD ["serve"]
